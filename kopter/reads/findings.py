"""Findings: the records a tenant's detection rules matched as they were ingested, newest first
(``kopter.detections.findings`` stores them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pynamodb.pagination import ResultIterator
from typing_extensions import TypedDict  # pydantic reads TypedDicts from here before 3.12

from kopter.reads.pages import Key, Partition, page_size, time_range
from kopter.tables import Finding


@dataclass(frozen=True)
class FindingsQuery:
    tenant_id: str
    since: str | None = None  # the record's time, "YYYY-MM-DDTHH:MM:SSZ", inclusive
    until: str | None = None  # exclusive
    limit: int | None = None
    start: Key | None = None  # the key of the last item read: continue after it
    oldest_first: bool = False


class FindingRow(TypedDict):
    event_time: str
    event_id: str
    account_id: str
    region: str
    event_source: str
    event_name: str
    principal: str
    source_ip: str | None
    error_code: str | None
    level: str  # the most severe rule's (Sigma's levels)
    rules: list[dict[str, Any]]  # id, title, source, author, level: most severe first
    source_object: str | None


def partition(q: FindingsQuery) -> Partition:
    return Partition({"tenant_id": q.tenant_id}, frozenset({"event_key"}))


def query(q: FindingsQuery) -> ResultIterator[Finding]:
    return Finding.query(
        q.tenant_id,
        range_key_condition=time_range(Finding.event_key, q.since, q.until),
        scan_index_forward=q.oldest_first,
        limit=q.limit,
        page_size=page_size(q.limit, False),
        last_evaluated_key=q.start,
    )


def view(f: Finding) -> FindingRow:
    return {
        "event_time": f.event_time,
        "event_id": f.event_id,
        "account_id": f.account_id,
        "region": f.region,
        "event_source": f.event_source,
        "event_name": f.event_name,
        "principal": f.principal,
        "source_ip": f.source_ip,
        "error_code": f.error_code,
        "level": f.level,
        "rules": f.rules,
        "source_object": f.source_object,
    }
