"""The daily audit digest of one of a tenant's UTC days (``kopter.cloudtrail.digest`` makes it)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from typing_extensions import TypedDict  # pydantic reads TypedDicts from here before 3.12

from kopter.tables import AuditDigest


class DigestRow(TypedDict):
    tenant_id: str
    day: str  # YYYY-MM-DD, UTC
    records: int
    principals: int  # distinct principals; by_principal keeps the busiest
    by_principal: dict[str, int]  # calls, busiest first
    by_source: dict[str, int]  # calls by eventSource, busiest first
    denied_calls: int
    denied: list[dict[str, Any]]  # {"principal", "count", "calls": {eventName: n}}, most first
    failed_calls: int  # failed for a reason other than access denied
    failed: list[dict[str, Any]]  # {"principal", "count", "errors": {errorCode: n}}
    findings_total: int
    findings: list[dict[str, Any]]  # most severe first, the largest kept
    computed_at: datetime


def query(tenant_id: str, day: date) -> AuditDigest | None:
    try:
        return AuditDigest.get(tenant_id, day.isoformat())
    except AuditDigest.DoesNotExist:
        return None


def view(digest: AuditDigest) -> DigestRow:
    return {
        "tenant_id": digest.tenant_id,
        "day": digest.day,
        "records": int(digest.records),
        "principals": int(digest.principals),
        "by_principal": digest.by_principal,
        "by_source": digest.by_source,
        "denied_calls": int(digest.denied_calls),
        "denied": digest.denied,
        "failed_calls": int(digest.failed_calls),
        "failed": digest.failed,
        "findings_total": int(digest.findings_total),
        "findings": digest.findings,
        "computed_at": digest.computed_at,
    }
