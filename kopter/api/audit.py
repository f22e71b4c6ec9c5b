"""``GET /v1/audit/aws``: the tenant's audit log (CloudTrail), newest first, with the filters of
`kopter audit` and a ``next`` cursor."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from kopter.api.cursors import FILTERED_PAGE_SIZE, Pager, Scope, read_page
from kopter.api.errors import ApiError, responses
from kopter.api.identity import Caller
from kopter.api.params import KEY_TEXT, Account, Cursor, Limit, Since, Until, iso_time
from kopter.cloudtrail.query import AuditQuery, as_row, plan
from kopter.tables import AuditLogEvent

router = APIRouter(tags=["audit"])


class AuditEvent(BaseModel):
    event_time: str
    event_id: str
    account_id: str
    region: str
    event_source: str
    event_name: str
    principal_type: str | None
    principal_arn: str | None
    principal_account: str | None
    session_issuer: str | None
    invoked_by: str | None
    source_ip: str | None
    user_agent: str | None
    read_only: bool | None
    error_code: str | None
    error_message: str | None
    request: str | None  # compact JSON, as CloudTrail had it (cut to fit when `truncated`)
    response: str | None
    truncated: bool
    source_object: str | None


class AuditPage(BaseModel):
    items: list[AuditEvent]
    next: str | None


@router.get(
    "/v1/audit/aws",
    response_model=AuditPage,
    responses=responses(400, 401),
    summary="The audit log, newest first",
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
    )
    if q.since and q.until and q.since > q.until:
        raise ApiError(400, "since: after until")
    p = plan(q)
    filters = {k: v for k, v in vars(q).items() if k not in ("tenant_id", "limit")}
    scope = Scope(
        tenant,
        "audit",
        filters,
        {"tenant_id": tenant, p.hash_attribute: p.hash_key},
        frozenset({"event_key"}),
    )
    results = p.source.query(
        p.hash_key,
        range_key_condition=p.range_condition,
        filter_condition=p.filter_condition,
        scan_index_forward=False,
        page_size=limit if p.filter_condition is None else FILTERED_PAGE_SIZE,
        last_evaluated_key=cursors.decode(scope, cursor) if cursor else None,
    )
    events, last = read_page(results, scope, limit, AuditLogEvent.from_raw_data)
    # Plain rows: FastAPI validates them against AuditPage once, on the way out.
    return {
        "items": [as_row(e) for e in events],
        "next": cursors.encode(scope, last) if last else None,
    }
