"""The tenant's detection rules (as `kopter rules`) and what they found (as `kopter findings`):
``GET /v1/rules``, ``POST /v1/rules`` (the tenant's own Sigma rule), ``POST
/v1/rules/{id}/enable`` and ``/disable``, and ``GET /v1/findings`` (newest first, with a
``next`` cursor). A rule kopter would not run is a 400 naming what is wrong, and nothing is
stored; a rule id the tenant does not have is a 404."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field

from kopter.api.cursors import Pager, Scope, read_page
from kopter.api.errors import ApiError, responses
from kopter.api.identity import Caller
from kopter.api.params import Cursor, Limit, Since, Until, iso_time
from kopter.detections import tenant_rules
from kopter.errors import Refused
from kopter.reads.findings import FindingRow, FindingsQuery, partition
from kopter.reads.findings import query as findings_query
from kopter.reads.findings import view as finding_view
from kopter.reads.rules import RuleRow, query, view
from kopter.tables import Finding

router = APIRouter(tags=["detections"])

RuleId = Annotated[
    str,
    Path(
        pattern=r"^[A-Za-z0-9._-]{1,128}$",
        description="A rule's id: a Sigma rule's UUID, or the name of one of kopter's rules.",
    ),
]


class Rules(BaseModel):
    items: list[RuleRow]


class NewRule(BaseModel):
    yaml: str = Field(
        max_length=64 * 1024,
        description="One Sigma rule: logsource product aws, service cloudtrail, with a UUID id "
        "of its own and a level.",
    )


class FindingsPage(BaseModel):
    items: list[FindingRow]
    next: str | None


@router.get(
    "/v1/rules",
    response_model=Rules,
    responses=responses(401),
    summary="The tenant's detection rules, and whether each is on",
)
def rules(tenant: Caller) -> dict[str, Any]:
    return {"items": [view(rule, enabled) for rule, enabled in query(tenant)]}


@router.post(
    "/v1/rules",
    response_model=RuleRow,
    responses=responses(400, 401),
    summary="Add the tenant's own Sigma rule (one of the same id is replaced)",
)
def add_rule(tenant: Caller, rule: NewRule) -> RuleRow:
    try:
        added = tenant_rules.add(tenant, rule.yaml)
    except Refused as e:
        raise ApiError(400, str(e)) from None
    return view(added, True)


def _switch(tenant: str, rule_id: str, enabled: bool) -> RuleRow:
    try:
        rule = tenant_rules.set_enabled(tenant, rule_id, enabled)
    except Refused:
        raise ApiError(404, "no such rule") from None
    return view(rule, enabled)


@router.post(
    "/v1/rules/{id}/enable",
    response_model=RuleRow,
    responses=responses(400, 401, 404),
    summary="Turn a rule on for the tenant",
)
def enable_rule(tenant: Caller, id: RuleId) -> RuleRow:
    return _switch(tenant, id, True)


@router.post(
    "/v1/rules/{id}/disable",
    response_model=RuleRow,
    responses=responses(400, 401, 404),
    summary="Turn a rule off for the tenant",
)
def disable_rule(tenant: Caller, id: RuleId) -> RuleRow:
    return _switch(tenant, id, False)


@router.get(
    "/v1/findings",
    response_model=FindingsPage,
    responses=responses(400, 401),
    summary="The records the tenant's rules matched as they were ingested, newest first",
)
def findings(
    tenant: Caller,
    cursors: Pager,
    since: Since = None,
    until: Until = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> dict[str, Any]:
    q = FindingsQuery(
        tenant,
        since=iso_time("since", since) if since else None,
        until=iso_time("until", until) if until else None,
        limit=limit,
    )
    if q.since and q.until and q.since > q.until:
        raise ApiError(400, "since: after until")
    p = partition(q)
    filters = {"since": q.since, "until": q.until}
    scope = Scope(tenant, "findings", filters, p.hash_keys, p.range_keys)
    if cursor:
        q = replace(q, start=cursors.decode(scope, cursor))
    found, last = read_page(findings_query(q), scope, limit, Finding.from_raw_data)
    return {
        "items": [finding_view(f) for f in found],
        "next": cursors.encode(scope, last) if last else None,
    }
