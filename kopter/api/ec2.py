"""``GET /v1/ec2/events``: what changed in the tenant's EC2 fleets, newest first (as
`kopter events`), with a ``next`` cursor."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from kopter.api.cursors import Pager, Scope, read_page
from kopter.api.errors import responses
from kopter.api.identity import Caller
from kopter.api.params import Account, Cursor, Limit, Since, iso_time
from kopter.reads.ec2_events import Ec2EventRow, Ec2EventsQuery, partition, query, view
from kopter.tables import Ec2Event

router = APIRouter(tags=["ec2"])


class Ec2EventsPage(BaseModel):
    items: list[Ec2EventRow]
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
    since = iso_time("since", since) if since else None
    q = Ec2EventsQuery(tenant, since=since, account=account, limit=limit)
    p = partition(q)
    scope = Scope(
        tenant, "ec2-events", {"since": since, "account": account}, p.hash_keys, p.range_keys
    )
    if cursor:
        q = replace(q, start=cursors.decode(scope, cursor))
    events, last = read_page(query(q), scope, limit, Ec2Event.from_raw_data)
    return {
        "items": [view(e) for e in events],
        "next": cursors.encode(scope, last) if last else None,
    }
