"""The `describer` queue: customer accounts' EC2 fleets, and whether kopter can reach them."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from celery import chord

from kopter import accounts
from kopter.crossaccount import AssumeRoleFailed, shared_sessions
from kopter.ec2 import describer, instances
from kopter.settings import get_settings
from tasks.aggregator import aggregate_last_hour
from tasks.app import app
from tasks.notifications import raise_notification


@dataclass(frozen=True)
class DescribeRun:
    """What ``describe_all_accounts`` returns; ``group`` is the run's tasks, when it has any."""

    run_at: str
    enqueued: int
    skipped: int
    group: str | None = None


@dataclass(frozen=True)
class RegionDescribed:
    """What ``describe_account_region`` returns when it described the region."""

    instances: int
    written: int
    events: dict[str, int]  # kind of change: count
    status: str = "described"


@dataclass(frozen=True)
class RegionNotDescribed:
    """What ``describe_account_region`` returns when it could not, or need not, describe."""

    status: str  # "skipped" or "unhealthy"
    reason: str


def region_result(value: dict[str, Any]) -> RegionDescribed | RegionNotDescribed:
    described = value["status"] == "described"
    return RegionDescribed(**value) if described else RegionNotDescribed(**value)


def summarize(
    run: DescribeRun, regions: list[RegionDescribed | RegionNotDescribed]
) -> dict[str, Any]:
    """Add up what the tasks of a describer run found (`kopter run describer --wait`)."""
    described = [r for r in regions if isinstance(r, RegionDescribed)]
    unhealthy = [
        r for r in regions if isinstance(r, RegionNotDescribed) and r.status == "unhealthy"
    ]
    events: dict[str, int] = {}
    for r in described:
        for kind, count in r.events.items():
            events[kind] = events.get(kind, 0) + count
    return {
        "run_at": run.run_at,
        "regions_described": len(described),
        "unhealthy": sorted({r.reason for r in unhealthy}),
        "skipped_unhealthy_accounts": run.skipped,
        "instances": sum(r.instances for r in described),
        "events": events,
    }


@app.task
def check_account(tenant_id: str, account_id: str) -> list[dict[str, Any]]:
    """Assume the account's role, try what kopter needs there, and record its health."""
    account = accounts.get_account(tenant_id, account_id)
    settings = get_settings()
    return [asdict(c) for c in accounts.check_account(account, shared_sessions(settings), settings)]


@app.task
def describe_all_accounts(
    run_at: str | None = None, tenant_id: str | None = None, spread_seconds: int | None = None
) -> dict[str, Any]:
    """Fan out one describe task per (account due, region), read from the accounts table now;
    when all have finished, the aggregator computes the hour's costs.

    Beat's hourly run spreads the tasks over ``KOPTER_DESCRIBE_SPREAD_SECONDS``, by a stable hash
    of account and region, so a run over many accounts never stampedes one region's API. A run a
    person asks for (`kopter run describer`) passes its own ``spread_seconds``: 0 unless asked."""
    run_at = run_at or datetime.now(UTC).replace(minute=0, second=0, microsecond=0).isoformat()
    spread = get_settings().describe_spread_seconds if spread_seconds is None else spread_seconds
    listed = accounts.list_accounts(tenant_id) if tenant_id else accounts.all_accounts()
    header, skipped = [], 0
    for account in listed:
        if not accounts.due_for_describe(account, datetime.now(UTC)):
            skipped += 1
            continue
        for region in account.regions:
            offset = int(hashlib.sha256(f"{account.account_id}/{region}".encode()).hexdigest(), 16)
            header.append(
                describe_account_region.signature(
                    (account.tenant_id, account.account_id, region, run_at),
                    countdown=offset % spread if spread else 0,
                )
            )
    group = None
    if header:
        # A task lost for good leaves the chord unfinished; beat's own aggregator entry, later
        # in the hour, covers that hour. A run for one tenant aggregates that tenant only: it
        # must not read and rewrite every other tenant's costs.
        run = chord(header)(aggregate_last_hour.si(tenant_id=tenant_id))
        run.parent.save()  # so that `kopter run describer --wait` can follow the run
        group = run.parent.id
    return asdict(DescribeRun(run_at, len(header), skipped, group))


@app.task
def describe_account_region(
    tenant_id: str, account_id: str, region: str, run_at: str
) -> dict[str, Any]:
    """Describe one region of one account and record what changed."""
    account = accounts.get_account(tenant_id, account_id)
    gone = accounts.no_longer_served(account, region)
    if gone:  # disconnected, or the region removed, after this task was queued
        return asdict(RegionNotDescribed("skipped", gone))
    target, sessions = accounts.target(account), shared_sessions(get_settings())
    try:
        ec2 = sessions.client(target, "ec2", region)
        current = instances.describe(ec2, region)
    except AssumeRoleFailed as e:
        accounts.record_health(account, [accounts.Check("assume-role", False, str(e))])
        sessions.forget(target)
        raise_notification(accounts.unhealthy_notice(account))
        return asdict(RegionNotDescribed("unhealthy", str(e)))
    result = describer.record(
        tenant_id, account_id, region, current, datetime.fromisoformat(run_at), get_settings()
    )
    accounts.record_health(account, [accounts.Check(f"ec2:{region}", True, "described")])
    accounts.end_rotation(account, sessions)
    kinds: dict[str, int] = {}
    for change in result.changes:
        kinds[change.kind] = kinds.get(change.kind, 0) + 1
    return asdict(RegionDescribed(result.instances, result.written, kinds))
