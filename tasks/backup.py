"""The `backup` queue: snapshots of tagged instances, and their expiry."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from celery import group

from kopter import accounts
from kopter.crossaccount import AssumeRoleFailed, shared_sessions
from kopter.ec2 import backup
from kopter.settings import get_settings
from tasks.app import app
from tasks.notifications import raise_notification


@dataclass(frozen=True)
class BackupRun:
    """What ``run_backups`` returns; ``group`` is the run's tasks, when it has any."""

    window: str
    enqueued: int
    skipped: int
    group: str | None = None


@dataclass(frozen=True)
class RegionBackedUp:
    """What ``back_up_account_region`` returns when it backed the region up: the counts of
    kopter.ec2.backup.RegionBackup."""

    account: str
    region: str
    window: str
    instances: int
    created: int
    adopted: int
    existing: int
    in_progress: int
    failed: list[dict[str, Any]]  # volume_id, instance_id, error
    expired: int
    expiry_failed: list[str]
    ignored: dict[str, str]
    status: str = "backed-up"


@dataclass(frozen=True)
class RegionNotBackedUp:
    """What ``back_up_account_region`` returns when it could not, or need not, back up."""

    status: str  # "skipped" or "unhealthy"
    account: str
    region: str
    reason: str


def region_result(value: dict[str, Any]) -> RegionBackedUp | RegionNotBackedUp:
    backed_up = value["status"] == "backed-up"
    return RegionBackedUp(**value) if backed_up else RegionNotBackedUp(**value)


def summarize(run: BackupRun, regions: list[RegionBackedUp | RegionNotBackedUp]) -> dict[str, Any]:
    """Add up what the tasks of a backup run did; each failed volume is listed."""
    done = [r for r in regions if isinstance(r, RegionBackedUp)]
    unhealthy = [r for r in regions if isinstance(r, RegionNotBackedUp) and r.status == "unhealthy"]
    return {
        "window": run.window,
        "regions_backed_up": len(done),
        "unhealthy": sorted({r.reason for r in unhealthy}),
        "skipped_unhealthy_accounts": run.skipped,
        "instances": sum(r.instances for r in done),
        "created": sum(r.created for r in done),
        "adopted": sum(r.adopted for r in done),
        "existing": sum(r.existing for r in done),
        "in_progress": sum(r.in_progress for r in done),
        "failed_volumes": [
            {"account_id": r.account, "region": r.region, **f} for r in done for f in r.failed
        ],
        "expired": sum(r.expired for r in done),
        "expiry_failed": [e for r in done for e in r.expiry_failed],
    }


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
    run_id = None
    if tasks:
        run = group(tasks)()
        run.save()  # so that `kopter run backup --wait` can follow the run
        run_id = run.id
    return asdict(BackupRun(window, len(tasks), skipped, run_id))


@app.task
def back_up_account_region(
    tenant_id: str, account_id: str, region: str, window: str
) -> dict[str, Any]:
    """Back up one region of one account for ``window``, and delete its expired snapshots."""
    account = accounts.get_account(tenant_id, account_id)
    gone = accounts.no_longer_served(account, region)
    if gone:  # disconnected, or the region removed, after this task was queued
        return asdict(RegionNotBackedUp("skipped", account_id, region, gone))
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
        return asdict(RegionNotBackedUp("unhealthy", account_id, region, str(e)))
    if result.failed:
        raise_notification(backup.failure_notice(tenant_id, account_id, result))
    return asdict(RegionBackedUp(account_id, **result.as_dict()))
