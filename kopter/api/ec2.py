"""``GET /v1/ec2/events``: what changed in the tenant's EC2 fleets, newest first (as
`kopter events`), with a ``next`` cursor."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from kopter.api.cursors import Pager, Scope, read_page
from kopter.api.errors import responses
from kopter.api.identity import Caller
from kopter.api.params import Account, Cursor, Limit, Since, iso_time
from kopter.ec2.events import view
from kopter.tables import Ec2Event

router = APIRouter(tags=["ec2"])


class Ec2EventOut(BaseModel):
    occurred_at: datetime
    account_id: str
    region: str
    instance_id: str
    kind: str  # launched, started, stopped, terminated, resized, retagged
    detail: dict[str, Any] | None
    principal_arn: str | None
    sources: list[str]  # describer, cloudtrail: who saw it


class Ec2EventsPage(BaseModel):
    items: list[Ec2EventOut]
    next: str | None


@router.get(
    "/v1/ec2/events",
    response_model=Ec2EventsPage,
    responses=responses(400, 401),
    summary="Changes to the EC2 fleets, newest first",
)
def ec2_events(
    tenant: Caller,
    cursors: Pager,
    since: Since = None,
    account: Account = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> dict[str, Any]:
    start = iso_time("since", since) if since else None
    hash_keys = {"tenant_id": tenant}
    if account:
        source: Any = Ec2Event.by_account
        hash_keys["tenant_account"] = Ec2Event.account_key(tenant, account)
    else:
        source = Ec2Event
    scope = Scope(
        tenant,
        "ec2-events",
        {"since": start, "account": account},
        hash_keys,
        frozenset({"event_key"}),
    )
    results = source.query(
        hash_keys.get("tenant_account", tenant),
        range_key_condition=Ec2Event.event_key >= start if start else None,
        scan_index_forward=False,
        page_size=limit,
        last_evaluated_key=cursors.decode(scope, cursor) if cursor else None,
    )
    events, last = read_page(results, scope, limit, Ec2Event.from_raw_data)
    return {
        "items": [view(e) for e in events],
        "next": cursors.encode(scope, last) if last else None,
    }
