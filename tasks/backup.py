"""The `backup` queue: snapshots of tagged instances, and their expiry."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from celery import group

from kopter import accounts
from kopter.crossaccount import AssumeRoleFailed, shared_sessions
from kopter.ec2 import backup
from kopter.settings import get_settings
from tasks.app import app
from tasks.notifications import raise_notification


@app.task
def run_backups(tenant_id: str | None = None, window: str | None = None) -> dict[str, Any]:
    """Fan out one backup task per (healthy account, region), read from the accounts table now,
    for the 12-hour window this run belongs to."""
    window = window or backup.window_key(backup.window_start(datetime.now(UTC)))
    listed = accounts.list_accounts(tenant_id) if tenant_id else accounts.all_accounts()
    tasks, skipped = [], 0
    for account in listed:
        # An unhealthy account is retried by the describer, with backoff; its backups wait.
        if not account.healthy:
            skipped += 1
            continue
        tasks += [
            back_up_account_region.s(account.tenant_id, account.account_id, region, window)
            for region in account.regions
        ]
    summary: dict[str, Any] = {"window": window, "enqueued": len(tasks), "skipped": skipped}
    if tasks:
        run = group(tasks)()
        run.save()  # so that `kopter run backup --wait` can follow the run
        summary["group"] = run.id
    return summary


@app.task
def back_up_account_region(
    tenant_id: str, account_id: str, region: str, window: str
) -> dict[str, Any]:
    """Back up one region of one account for ``window``, and delete its expired snapshots."""
    account = accounts.get_account(tenant_id, account_id)
    gone = accounts.no_longer_served(account, region)
    if gone:  # disconnected, or the region removed, after this task was queued
        return {"status": "skipped", "account": account_id, "region": region, "reason": gone}
    target, settings = accounts.target(account), get_settings()
    try:
        ec2 = shared_sessions(settings).client(target, "ec2", region)
        result = backup.back_up_region(
            ec2,
            backup.Scope(tenant_id, account_id, region),
            datetime.fromisoformat(window),
            settings,
        )
    except AssumeRoleFailed as e:
        accounts.record_health(account, [accounts.Check("assume-role", False, str(e))])
        shared_sessions(settings).forget(target)
        raise_notification(accounts.unhealthy_notice(account))
        return {"status": "unhealthy", "account": account_id, "region": region, "reason": str(e)}
    if result.failed:
        raise_notification(backup.failure_notice(tenant_id, account_id, result))
    return {"status": "backed-up", "account": account_id, **result.as_dict()}
