"""``GET /v1/audit/aws``: the tenant's audit log (CloudTrail), newest first, with the filters of
`kopter audit` and a ``next`` cursor."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from kopter.api.cursors import Pager, Scope, read_page
from kopter.api.errors import ApiError, responses
from kopter.api.identity import Caller
from kopter.api.params import KEY_TEXT, Account, Cursor, Limit, Since, Until, iso_time
from kopter.reads.audit import AuditQuery, AuditRow, partition, query, view
from kopter.tables import AuditLogEvent

router = APIRouter(tags=["audit"])


class AuditPage(BaseModel):
    items: list[AuditRow]
    next: str | None


@router.get(
    "/v1/audit/aws",
    response_model=AuditPage,
    responses=responses(400, 401),
    summary="The audit log, newest first",
    description="With the filters of `kopter audit`.",
)
def audit_log(
    tenant: Caller,
    cursors: Pager,
    since: Since = None,
    until: Until = None,
    account: Account = None,
    event_name: Annotated[
        str | None, Query(max_length=128, pattern=KEY_TEXT, description="e.g. RunInstances")
    ] = None,
    event_source: Annotated[
        str | None,
        Query(max_length=128, pattern=KEY_TEXT, description="e.g. ec2.amazonaws.com"),
    ] = None,
    user: Annotated[
        str | None, Query(max_length=1024, pattern=KEY_TEXT, description="A principal ARN.")
    ] = None,
    errors: Annotated[bool, Query(description="Only calls that failed or were denied.")] = False,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> dict[str, Any]:
    q = AuditQuery(
        tenant_id=tenant,
        since=iso_time("since", since) if since else None,
        until=iso_time("until", until) if until else None,
        account=account,
        event_name=event_name,
        event_source=event_source,
        user=user,
        errors_only=errors,
        limit=limit,
    )
    if q.since and q.until and q.since > q.until:
        raise ApiError(400, "since: after until")
    filters = {k: v for k, v in vars(q).items() if k not in ("tenant_id", "limit", "start")}
    p = partition(q)
    scope = Scope(tenant, "audit", filters, p.hash_keys, p.range_keys)
    if cursor:
        q = replace(q, start=cursors.decode(scope, cursor))
    events, last = read_page(query(q), scope, limit, AuditLogEvent.from_raw_data)
    # Plain rows: FastAPI validates them against AuditPage once, on the way out.
    return {
        "items": [view(e) for e in events],
        "next": cursors.encode(scope, last) if last else None,
    }
