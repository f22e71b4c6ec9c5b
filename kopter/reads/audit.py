"""The audit log: a tenant's CloudTrail records, newest first.

The most selective filter picks the index (principal, then event name, then account, else the
table itself); the others become filter expressions. Every index's hash key starts with the
tenant id, so no filter can reach another tenant's items. Pages are read lazily, so a day of a
busy account streams instead of loading whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pynamodb.expressions.condition import Condition
from pynamodb.pagination import ResultIterator
from typing_extensions import TypedDict  # pydantic reads TypedDicts from here before 3.12

from kopter.reads.pages import Key, Partition, page_size, time_range
from kopter.tables import AuditLogEvent


@dataclass(frozen=True)
class AuditQuery:
    tenant_id: str
    since: str | None = None  # "YYYY-MM-DDTHH:MM:SSZ", inclusive
    until: str | None = None  # exclusive
    account: str | None = None
    event_name: str | None = None
    event_source: str | None = None
    user: str | None = None  # principal ARN
    errors_only: bool = False
    limit: int | None = None
    start: Key | None = None  # the key of the last item read: continue after it


class AuditRow(TypedDict):
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


@dataclass(frozen=True)
class _Plan:
    """How a search reads: the index (or table) and its hash key, and the conditions."""

    source: Any  # AuditLogEvent or one of its indexes
    hash_attribute: str
    hash_key: str
    range_condition: Condition | None
    filter_condition: Condition | None


def _plan(q: AuditQuery) -> _Plan:
    filters: list[Condition] = []
    if q.user:
        source: Any = AuditLogEvent.by_principal
        attribute, hash_key = "tenant_principal", AuditLogEvent.principal_key(q.tenant_id, q.user)
    elif q.event_name:
        source = AuditLogEvent.by_event_name
        attribute = "tenant_event_name"
        hash_key = AuditLogEvent.event_name_key(q.tenant_id, q.event_name)
    elif q.account:
        source = AuditLogEvent.by_account
        attribute, hash_key = "tenant_account", AuditLogEvent.account_key(q.tenant_id, q.account)
    else:
        source, attribute, hash_key = AuditLogEvent, "tenant_id", q.tenant_id
    if q.event_name and source is not AuditLogEvent.by_event_name:
        filters.append(AuditLogEvent.event_name == q.event_name)
    if q.account and source is not AuditLogEvent.by_account:
        filters.append(AuditLogEvent.account_id == q.account)
    if q.event_source:
        filters.append(AuditLogEvent.event_source == q.event_source)
    if q.errors_only:
        filters.append(AuditLogEvent.error_code.exists())
    condition = None
    for f in filters:
        condition = f if condition is None else condition & f
    return _Plan(
        source,
        attribute,
        hash_key,
        time_range(AuditLogEvent.event_key, q.since, q.until),
        condition,
    )


def partition(q: AuditQuery) -> Partition:
    p = _plan(q)
    hash_keys = {"tenant_id": q.tenant_id, p.hash_attribute: p.hash_key}
    return Partition(hash_keys, frozenset({"event_key"}))


def query(q: AuditQuery) -> ResultIterator[AuditLogEvent]:
    p = _plan(q)
    return p.source.query(
        p.hash_key,
        range_key_condition=p.range_condition,
        filter_condition=p.filter_condition,
        scan_index_forward=False,
        limit=q.limit,
        page_size=page_size(q.limit, p.filter_condition is not None),
        last_evaluated_key=q.start,
    )


def view(event: AuditLogEvent) -> AuditRow:
    return {
        "event_time": event.event_time,
        "event_id": event.event_id,
        "account_id": event.account_id,
        "region": event.region,
        "event_source": event.event_source,
        "event_name": event.event_name,
        "principal_type": event.principal_type,
        "principal_arn": event.principal_arn,
        "principal_account": event.principal_account,
        "session_issuer": event.session_issuer,
        "invoked_by": event.invoked_by,
        "source_ip": event.source_ip,
        "user_agent": event.user_agent,
        "read_only": event.read_only,
        "error_code": event.error_code,
        "error_message": event.error_message,
        "request": event.request,
        "response": event.response,
        "truncated": event.truncated,
        "source_object": event.source_object,
    }
