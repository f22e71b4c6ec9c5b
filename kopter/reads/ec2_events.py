"""EC2 events: what changed in a tenant's fleets (launched, started, stopped, terminated,
resized, retagged), newest first, from the table or, for one account, its index."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pynamodb.pagination import ResultIterator
from typing_extensions import TypedDict  # pydantic reads TypedDicts from here before 3.12

from kopter.reads.pages import Key, Partition, page_size
from kopter.tables import Ec2Event


@dataclass(frozen=True)
class Ec2EventsQuery:
    tenant_id: str
    since: str | None = None  # "YYYY-MM-DDTHH:MM:SSZ", inclusive
    account: str | None = None
    limit: int | None = None
    start: Key | None = None  # the key of the last item read: continue after it


class Ec2EventRow(TypedDict):
    occurred_at: datetime
    account_id: str
    region: str
    instance_id: str
    kind: str  # launched, started, stopped, terminated, resized, retagged
    detail: dict[str, Any] | None  # e.g. {"from": "t3.micro", "to": "m5.large"}
    principal_arn: str | None
    sources: list[str]  # describer, cloudtrail: who saw it


def partition(q: Ec2EventsQuery) -> Partition:
    hash_keys = {"tenant_id": q.tenant_id}
    if q.account:
        hash_keys["tenant_account"] = Ec2Event.account_key(q.tenant_id, q.account)
    return Partition(hash_keys, frozenset({"event_key"}))


def query(q: Ec2EventsQuery) -> ResultIterator[Ec2Event]:
    source: Any = Ec2Event.by_account if q.account else Ec2Event
    hash_keys = partition(q).hash_keys
    return source.query(
        hash_keys.get("tenant_account", q.tenant_id),
        range_key_condition=Ec2Event.event_key >= q.since if q.since else None,
        scan_index_forward=False,
        limit=q.limit,
        page_size=page_size(q.limit, filtered=False),
        last_evaluated_key=q.start,
    )


def view(event: Ec2Event) -> Ec2EventRow:
    return {
        "occurred_at": event.occurred_at,
        "account_id": event.account_id,
        "region": event.region,
        "instance_id": event.instance_id,
        "kind": event.kind,
        "detail": event.detail,
        "principal_arn": event.principal_arn,
        "sources": sorted(event.sources or ()),
    }
