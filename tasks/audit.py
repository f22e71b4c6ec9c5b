"""The `audit` queue: the daily digest of each tenant's audit log (kopter/cloudtrail/digest.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from celery import group

from kopter import accounts
from kopter.cloudtrail import digest
from kopter.settings import get_settings
from tasks.app import app
from tasks.notifications import raise_notification


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
    summary: dict[str, Any] = {"days": days, "tenants": len(tenant_ids)}
    if tenant_ids:
        run = group(audit_tenant_day.si(t, d) for t in tenant_ids for d in days).apply_async()
        run.save()  # so that `kopter run audit --wait` can follow the run
        summary["group"] = run.id
    return summary


@app.task
def audit_tenant_day(tenant_id: str, day: str) -> dict[str, Any]:
    """Digest one tenant's day and raise a notification per finding of severity high or above
    (a re-run raises the same notices, stored once)."""
    audit = digest.audit_day(tenant_id, digest.parse_day(day), get_settings())
    for notice in audit.notices():
        raise_notification(notice)
    return audit.summary()
