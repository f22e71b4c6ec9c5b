"""The `audit` queue: the daily digest of each tenant's audit log (kopter/cloudtrail/digest.py)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from celery import group

from kopter import accounts
from kopter.cloudtrail import digest
from kopter.settings import get_settings
from tasks.app import app
from tasks.notifications import raise_notification


@dataclass(frozen=True)
class AuditRun:
    """What ``run_daily_audit`` returns; ``group`` is the run's tasks, when it has any."""

    days: list[str]
    tenants: int
    group: str | None = None


@dataclass(frozen=True)
class DayAudited:
    """What ``audit_tenant_day`` returns: kopter.cloudtrail.digest.DayAudit's summary."""

    tenant_id: str
    day: str
    records: int
    denied_calls: int
    failed_calls: int
    findings: dict[str, int] = field(default_factory=dict)  # severity: count
    notified: int = 0


def summarize(run: AuditRun, digests: list[DayAudited]) -> dict[str, Any]:
    """Add up what the tenants' digests found (`kopter digest` shows one)."""
    findings: dict[str, int] = {}
    for d in digests:
        for severity, count in d.findings.items():
            findings[severity] = findings.get(severity, 0) + count
    return {
        "days": run.days,
        "tenants": run.tenants,
        "records": sum(d.records for d in digests),
        "denied_calls": sum(d.denied_calls for d in digests),
        "failed_calls": sum(d.failed_calls for d in digests),
        "findings": findings,
        "notified": sum(d.notified for d in digests),
    }


@app.task
def run_daily_audit(tenant_id: str | None = None, day: str | None = None) -> dict[str, Any]:
    """Fan out one digest task per tenant and day, tenants read from the table now. Beat passes
    no day and fires at 23:00 UTC: today, and yesterday again, whose last hour and late
    deliveries came in after its run (its digest is overwritten, its notices stored once)."""
    if day:
        days = [digest.parse_day(day).isoformat()]
    else:
        today = datetime.now(UTC).date()
        days = [(today - timedelta(days=1)).isoformat(), today.isoformat()]
    tenant_ids = [tenant_id] if tenant_id else [t.tenant_id for t in accounts.list_tenants()]
    run_id = None
    if tenant_ids:
        run = group(audit_tenant_day.si(t, d) for t in tenant_ids for d in days).apply_async()
        run.save()  # so that `kopter run audit --wait` can follow the run
        run_id = run.id
    return asdict(AuditRun(days, len(tenant_ids), run_id))


@app.task
def audit_tenant_day(tenant_id: str, day: str) -> dict[str, Any]:
    """Digest one tenant's day and raise a notification per finding of severity high or above
    (a re-run raises the same notices, stored once)."""
    audit = digest.audit_day(tenant_id, digest.parse_day(day), get_settings())
    for notice in audit.notices():
        raise_notification(notice)
    return asdict(DayAudited(**audit.summary()))
