"""What happens to accounts and tenants after they are added: change, disconnect, purge, rotate.

Disconnecting an account keeps its row, marked ``removed_at``, and releases its id (the
``account-owner#`` claim) in one transaction: nothing runs for it from then on (the fan-outs skip
it, a task already queued ends with ``removed``, a log file of it is refused), another tenant may
register it, and what was collected stays until its retention unless purged.

A purge deletes by querying what is left, table by table, the tenant's own rows last: a purge that
crashed is run again and goes on where it stopped, and a purge run twice deletes nothing the
second time. Snapshots in the customer's account are theirs: a purge lists them, never deletes
them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pynamodb.exceptions import DoesNotExist, TransactWriteError
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from kopter import accounts, cache, dynamo
from kopter.errors import NotFound, Refused
from kopter.settings import Settings
from kopter.tables import (
    AuditDigest,
    AuditLogEvent,
    AwsAccount,
    Channel,
    Ec2Event,
    Ec2Instance,
    Ec2Snapshot,
    Finding,
    FrontendNotification,
    GlobalItem,
    PriceGraphPoint,
    Tenant,
    TenantRule,
    connection,
)

Progress = Callable[[str, int], None]  # (table, items deleted so far in it)


def _now() -> datetime:
    return datetime.now(UTC)


# --- change -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AccountChange:
    """What `kopter accounts update` changes; None keeps the current value."""

    role_arn: str | None = None
    regions: tuple[str, ...] | None = None
    cloudtrail_bucket: str | None = None
    cloudtrail_prefix: str | None = None  # "" removes the prefix
    no_cloudtrail: bool = False  # stop ingesting: forget bucket and prefix


def update_account(tenant_id: str, account_id: str, change: AccountChange) -> AwsAccount:
    """Change a connected account. Every job reads the account when it runs, so the next
    describer, backup and ingest use the new values; a new role is checked again at once."""
    account = connected_account(tenant_id, account_id)
    if change.no_cloudtrail:
        bucket, prefix = None, None
    else:
        bucket = change.cloudtrail_bucket or account.cloudtrail_bucket
        prefix = (
            account.cloudtrail_prefix
            if change.cloudtrail_prefix is None
            else change.cloudtrail_prefix
        )
    request = accounts.validate(
        accounts.AccountRequest(
            account_id,
            change.role_arn or account.role_arn,
            change.regions or tuple(account.regions),
            bucket,
            prefix or None,
        )
    )
    actions = [
        AwsAccount.role_arn.set(request.role_arn),
        AwsAccount.regions.set(list(request.regions)),
        _set_or_remove(AwsAccount.cloudtrail_bucket, request.cloudtrail_bucket),
        _set_or_remove(AwsAccount.cloudtrail_prefix, request.cloudtrail_prefix),
    ]
    if request.role_arn != account.role_arn:
        # Another role: whatever the old one's health was says nothing of it.
        actions += [AwsAccount.health_checked_at.remove(), AwsAccount.consecutive_failures.set(0)]
    if not dynamo.update_if(account, actions, AwsAccount.removed_at.does_not_exist()):
        raise Refused(f"account {account_id} was disconnected meanwhile")
    return account


def _set_or_remove(attribute: Any, value: str | None) -> Any:
    return attribute.set(value) if value is not None else attribute.remove()


def connected_account(tenant_id: str, account_id: str) -> AwsAccount:
    account = accounts.get_account(tenant_id, account_id)
    if account.removed_at is not None:
        raise NotFound(f"account {account_id} was disconnected on {account.removed_at:%Y-%m-%d}")
    return account


# --- disconnect -------------------------------------------------------------------------------


def remove_account(tenant_id: str, account_id: str) -> AwsAccount:
    """Disconnect an account now and release its id; its data stays (see `purge_account`)."""
    account = connected_account(tenant_id, account_id)
    removed_at = _now()
    try:
        with TransactWrite(connection=connection()) as tx:
            tx.update(
                account,
                actions=[
                    AwsAccount.removed_at.set(removed_at),
                    AwsAccount.previous_external_id.remove(),
                ],
                condition=AwsAccount.removed_at.does_not_exist(),
            )
            tx.delete(GlobalItem(GlobalItem.owner_key(account_id)))
    except TransactWriteError as e:
        if dynamo.condition_failed(e):
            raise Refused(f"account {account_id} was disconnected meanwhile") from None
        raise
    account.removed_at = removed_at
    return account


# --- rotate -----------------------------------------------------------------------------------


def rotate_external_id(tenant_id: str, account_id: str) -> AwsAccount:
    """A new ExternalId for the account. The old one is still tried after the new one until the
    new one works (`kopter accounts check`, or the next describer run), then forgotten."""
    account = connected_account(tenant_id, account_id)
    if account.previous_external_id:
        raise Refused(
            f"account {account_id} has a rotation pending: update the role's trust policy to "
            "the new ExternalId, then run `kopter accounts check` (it forgets the old one)"
        )
    old, new = account.external_id, accounts.new_external_id()
    rotated = dynamo.update_if(
        account,
        [AwsAccount.external_id.set(new), AwsAccount.previous_external_id.set(old)],
        (AwsAccount.external_id == old) & AwsAccount.removed_at.does_not_exist(),
    )
    if not rotated:
        raise Refused(f"account {account_id} changed meanwhile: try again")
    return account


# --- purge ------------------------------------------------------------------------------------


@dataclass
class PurgeSummary:
    """What a purge deleted, per table, and the snapshots it left in the customer's account."""

    deleted: dict[str, int] = field(default_factory=dict)
    snapshots_kept: list[dict[str, str]] = field(default_factory=list)
    redis_keys: int = 0

    def count(self, table: str, n: int) -> None:
        self.deleted[table] = self.deleted.get(table, 0) + n


def purge_account(
    tenant_id: str, account_id: str, settings: Settings, progress: Progress | None = None
) -> PurgeSummary:
    """Delete what kopter holds of a disconnected account, then its row."""
    account = accounts.get_account(tenant_id, account_id)
    if account.removed_at is None:
        raise Refused(f"account {account_id} is connected: disconnect it first")
    summary = PurgeSummary()
    _purge_instances(tenant_id, account_id, summary, settings, progress)
    _delete(GlobalItem, _global_keys(tenant_id, [account_id]), summary, settings, progress)
    audit = _keys(
        AuditLogEvent.by_account.query(AuditLogEvent.account_key(tenant_id, account_id)),
        AuditLogEvent,
    )
    _delete(AuditLogEvent, audit, summary, settings, progress)
    ec2 = _keys(Ec2Event.by_account.query(Ec2Event.account_key(tenant_id, account_id)), Ec2Event)
    _delete(Ec2Event, ec2, summary, settings, progress)
    points = PriceGraphPoint.query(
        tenant_id, filter_condition=PriceGraphPoint.account_id == account_id
    )
    _delete(PriceGraphPoint, _keys(points, PriceGraphPoint), summary, settings, progress)
    found = Finding.query(tenant_id, filter_condition=Finding.account_id == account_id)
    _delete(Finding, _keys(found, Finding), summary, settings, progress)
    _purge_snapshot_records(tenant_id, account_id, summary, settings, progress)
    _delete(AwsAccount, _keys([account], AwsAccount), summary, settings, progress)
    return summary


def remove_tenant(tenant_id: str) -> list[AwsAccount]:
    """The customer leaves: every account disconnected, and their identity refused from now."""
    tenant = Tenant.get(tenant_id)
    removed = [
        remove_account(tenant_id, a.account_id)
        for a in accounts.list_accounts(tenant_id)
        if a.removed_at is None
    ]
    if tenant.removed_at is None:
        tenant.update(actions=[Tenant.removed_at.set(_now())])
    return removed


def purge_tenant(
    tenant_id: str, settings: Settings, progress: Progress | None = None
) -> PurgeSummary:
    """Delete every item the tenant owns in every table (indexes follow their table), and its
    keys in Redis. The tenant must have been removed (`remove_tenant`) first."""
    try:
        tenant = Tenant.get(tenant_id, consistent_read=True)
    except DoesNotExist:
        tenant = None
    if tenant is not None and tenant.removed_at is None:
        raise Refused(f"tenant {tenant_id} is active: remove it first")
    summary = PurgeSummary()
    every_account = list(AwsAccount.query(tenant_id, consistent_read=True))
    for account in every_account:
        _purge_instances(tenant_id, account.account_id, summary, settings, progress)
    tenant_tables = (
        AuditLogEvent,
        Ec2Event,
        PriceGraphPoint,
        AuditDigest,
        FrontendNotification,
        Finding,
        TenantRule,
        Channel,
    )
    for model in tenant_tables:
        _delete(model, _keys(model.query(tenant_id), model), summary, settings, progress)
    _delete(GlobalItem, _global_keys(tenant_id, []), summary, settings, progress)
    summary.redis_keys = _purge_redis(tenant_id, settings)
    for account in every_account:
        _purge_snapshot_records(tenant_id, account.account_id, summary, settings, progress)
    _delete(AwsAccount, _keys(every_account, AwsAccount), summary, settings, progress)
    if tenant is not None:
        _delete(Tenant, _keys([tenant], Tenant), summary, settings, progress)
    return summary


def _purge_instances(
    tenant_id: str,
    account_id: str,
    summary: PurgeSummary,
    settings: Settings,
    progress: Progress | None,
) -> None:
    instances = _keys(
        Ec2Instance.query(Ec2Instance.account_key(tenant_id, account_id)), Ec2Instance
    )
    _delete(Ec2Instance, instances, summary, settings, progress)


def _purge_snapshot_records(
    tenant_id: str,
    account_id: str,
    summary: PurgeSummary,
    settings: Settings,
    progress: Progress | None,
) -> None:
    """The records of the snapshots kopter took, listed first: the snapshots are the customer's.
    Deleted last of the account's data, so a purge run again after a crash still lists them."""
    snapshots = list(Ec2Snapshot.query(Ec2Snapshot.account_key(tenant_id, account_id)))
    summary.snapshots_kept += [
        {"account_id": s.account_id, "region": s.region, "snapshot_id": s.snapshot_id}
        for s in snapshots
        if s.snapshot_id and s.state != "deleted"
    ]
    _delete(Ec2Snapshot, _keys(snapshots, Ec2Snapshot), summary, settings, progress)


def _global_keys(tenant_id: str, account_ids: list[str]) -> Iterator[dict[str, Any]]:
    """The tenant's Global items (of ``account_ids`` only, when given): the describer's
    watermarks and the ingest markers of its log files. A scan, Global being keyed by name: one
    per purge, whatever the number of accounts."""
    described = GlobalItem.described_prefix(tenant_id)
    for item in GlobalItem.scan():
        value = item.value if isinstance(item.value, dict) else {}
        if item.key.startswith(described):
            account = item.key[len(described) :].split("#", 1)[0]
        elif value.get("tenant_id") == tenant_id and not item.key.startswith("account-owner#"):
            account = str(value.get("account_id", ""))
        else:
            continue
        if not account_ids or account in account_ids:
            yield {"key": {"S": item.key}}


def _purge_redis(tenant_id: str, settings: Settings) -> int:
    """Task results that name the tenant (a job's summary, an account check): the only keys
    kopter keeps of a tenant in Redis but its delivery slots, which lapse within seconds, and
    they would expire within ``result_expires``."""
    client = cache.client(settings)
    needle = json.dumps(tenant_id).encode()
    doomed = [
        key
        for key in client.scan_iter(match="celery-task-meta-*", count=1000)
        if needle in (client.get(key) or b"")
    ]
    return int(client.delete(*doomed)) if doomed else 0


def _keys(items: Iterable[Model], model: type[Model]) -> Iterator[dict[str, Any]]:
    names = [a.attr_name for a in (model._hash_key_attribute(), model._range_key_attribute()) if a]
    for item in items:
        serialized = item.serialize()
        yield {name: serialized[name] for name in names}


def _delete(
    model: type[Model],
    keys: Iterable[dict[str, Any]],
    summary: PurgeSummary,
    settings: Settings,
    progress: Progress | None,
) -> None:
    table = model.Meta.table_name
    short = table.removeprefix(settings.prefix)
    batch: list[dict[str, Any]] = []
    for key in keys:
        batch.append(key)
        if len(batch) == 500:
            summary.count(short, dynamo.batch_delete(table, batch, settings))
            batch = []
            if progress:
                progress(short, summary.deleted[short])
    if batch:
        summary.count(short, dynamo.batch_delete(table, batch, settings))
    summary.deleted.setdefault(short, 0)
    if progress:
        progress(short, summary.deleted[short])
