"""``GET /v1/snapshots``: the backup job's snapshots of the tenant's volumes, newest window first
(as `kopter snapshots`), with a ``next`` cursor.

The listing is ordered across the tenant's accounts, which no single DynamoDB query returns, so
a page is cut from the whole listing and its cursor holds the last row's position in that order
(signed, and bound to the tenant and the filters as every cursor is)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from kopter.api.cursors import Pager, Scope
from kopter.api.errors import ApiError, responses
from kopter.api.identity import Caller
from kopter.api.params import Account, Cursor, Limit
from kopter.errors import NotFound
from kopter.reads.snapshots import SnapshotQuery, SnapshotRow, position, query, view

router = APIRouter(tags=["backups"])
POSITION = "position"  # the cursor's one range key: a row's place in the listing's order


class SnapshotsPage(BaseModel):
    items: list[SnapshotRow]
    next: str | None


@router.get(
    "/v1/snapshots",
    response_model=SnapshotsPage,
    responses=responses(400, 401, 404),
    summary="The backup job's snapshots, newest window first",
    description="Taken, failed and deleted; another tenant's account is a 404.",
)
def snapshots(
    tenant: Caller,
    cursors: Pager,
    account: Account = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> dict[str, Any]:
    scope = Scope(
        tenant, "snapshots", {"account": account}, {"tenant_id": tenant}, frozenset({POSITION})
    )
    after = cursors.decode(scope, cursor)[POSITION]["S"] if cursor else None
    try:
        found = query(SnapshotQuery(tenant, account, after))
    except NotFound:
        raise ApiError(404, "no such account") from None
    page = found[:limit]
    more = len(found) > limit
    key = {"tenant_id": {"S": tenant}, POSITION: {"S": position(page[-1])}} if more else None
    return {
        "items": [view(s) for s in page],
        "next": cursors.encode(scope, key) if key else None,
    }
