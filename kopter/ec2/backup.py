"""The 12-hourly backup job, one (account, region) at a time: a snapshot of every EBS volume of
the instances tagged for backup, and the deletion of kopter's snapshots that expired.

Once per (volume, window). A window is the 12 hours from the 00:00 or 12:00 UTC in which a run
was scheduled; it travels with the run, so a run redelivered later still means its window. Each
volume is claimed in Ec2Snapshots (a conditional put on ``<region>#<volume>#<window>``) before
CreateSnapshot, and a snapshot carries kopter's tags, its window among them, from the moment it
exists (TagSpecifications). A run repeated after a crash therefore finds the snapshot its claim
recorded, or the snapshot itself by its tags (created but not recorded: adopted), or neither
(claimed but never created: created now). A claim younger than the task time limit may belong to
a run still going, and is left to it; an older one belongs to a run the hard limit ended.

Deletion trusts only what EC2 says of a snapshot: this account's own (``OwnerIds=self``), tagged
``kopter:managed=true`` and ``kopter:tenant`` for this tenant, with a ``kopter:expires`` that has
passed. A table item pointing at a snapshot is never a reason to delete it.

A volume that fails (EC2 refuses the snapshot, the volume or its instance is gone) is recorded as
failed with EC2's reason and the run goes on with the others; a run repeated in the same window
tries it again. Throttling is retried by botocore's standard retry mode (``kopter.aws``).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from pynamodb.expressions.update import Action

from kopter import dynamo, times
from kopter.errors import aws_error
from kopter.notifications import Notice
from kopter.settings import Settings
from kopter.tables import Ec2Snapshot

MANAGED = "kopter:managed"
TENANT = "kopter:tenant"
INSTANCE = "kopter:instance"
VOLUME = "kopter:volume"
WINDOW = "kopter:window"
EXPIRES = "kopter:expires"

# An item's states.
CLAIMED, PENDING, COMPLETED, FAILED = "claimed", "pending", "completed", "failed"
DELETED = "deleted"
# What a run did with a volume, besides failing.
CREATED, ADOPTED, EXISTS, IN_PROGRESS = "created", "adopted", "exists", "in-progress"
HISTORY = timedelta(days=30)  # an item outlives its snapshot's expiry by this much (TTL)
WINDOW_HOURS = 12
# Instances whose volumes can be snapshotted: neither gone nor going.
LIVE_STATES = ["pending", "running", "stopping", "stopped"]
_DAYS = re.compile(r"^(\d{1,4})d$")


def window_start(now: datetime) -> datetime:
    """The start (00:00 or 12:00 UTC) of the window ``now`` falls in."""
    now = now.astimezone(UTC)
    hour = now.hour - now.hour % WINDOW_HOURS
    return now.replace(hour=hour, minute=0, second=0, microsecond=0)


def window_key(start: datetime) -> str:
    return times.stamp(start)


def retention(value: str, default_days: int) -> timedelta | None:
    """What a backup tag's value asks for: ``true`` (the default retention) or ``<days>d``;
    None for anything else (``false``, a typo), which backs nothing up."""
    value = value.strip().lower()
    if value == "true":
        return timedelta(days=default_days)
    match = _DAYS.match(value)
    if match and int(match.group(1)) > 0:
        return timedelta(days=int(match.group(1)))
    return None


@dataclass(frozen=True)
class Scope:
    tenant_id: str
    account_id: str
    region: str

    @property
    def tenant_account(self) -> str:
        return Ec2Snapshot.account_key(self.tenant_id, self.account_id)

    def item_key(self, volume_id: str, window: str) -> str:
        return Ec2Snapshot.volume_key(self.region, volume_id, window)


@dataclass(frozen=True)
class TaggedInstance:
    instance_id: str
    volume_ids: tuple[str, ...]
    retention: timedelta


@dataclass(frozen=True)
class KopterSnapshot:
    """A snapshot as DescribeSnapshots lists it."""

    snapshot_id: str
    state: str  # EC2's: pending, completed, error, …
    tags: dict[str, str]


@dataclass(frozen=True)
class VolumeBackup:
    volume_id: str
    instance_id: str
    status: str  # created, adopted, exists, in-progress, failed
    snapshot_id: str | None = None
    error: str | None = None


@dataclass
class RegionBackup:
    region: str
    window: str
    instances: int = 0
    volumes: list[VolumeBackup] = field(default_factory=list)
    ignored: dict[str, str] = field(default_factory=dict)  # instance id: unreadable tag value
    expired: list[str] = field(default_factory=list)  # snapshot ids deleted
    expiry_failures: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[VolumeBackup]:
        return [v for v in self.volumes if v.status == FAILED]

    def as_dict(self) -> dict[str, Any]:
        counts = Counter(v.status for v in self.volumes)
        return {
            "region": self.region,
            "window": self.window,
            "instances": self.instances,
            "created": counts[CREATED],
            "adopted": counts[ADOPTED],
            "existing": counts[EXISTS],
            "in_progress": counts[IN_PROGRESS],
            "failed": [
                {"volume_id": v.volume_id, "instance_id": v.instance_id, "error": v.error}
                for v in self.failed
            ],
            "expired": len(self.expired),
            "expiry_failed": self.expiry_failures,
            "ignored": self.ignored,
        }


def back_up_region(
    ec2: Any, scope: Scope, window: datetime, settings: Settings, now: datetime | None = None
) -> RegionBackup:
    """Snapshot the tagged instances' volumes for ``window`` and delete what expired by ``now``."""
    now = now or datetime.now(UTC)
    result = RegionBackup(scope.region, window_key(window))
    made = kopter_snapshots(ec2, scope.tenant_id)
    _settle_pending(scope, made)
    in_window = {s.tags.get(VOLUME): s for s in made if s.tags.get(WINDOW) == result.window}
    tagged, result.ignored = tagged_instances(
        ec2, settings.backup_tag, settings.backup_retention_days
    )
    result.instances = len(tagged)
    seen: set[str] = set()
    for instance in tagged:
        for volume_id in instance.volume_ids:
            if volume_id in seen:  # a Multi-Attach volume of two tagged instances
                continue
            seen.add(volume_id)
            result.volumes.append(
                _back_up_volume(
                    ec2, scope, instance, volume_id, window, in_window.get(volume_id), settings, now
                )
            )
    for snapshot in made:
        if _expired(snapshot, scope.tenant_id, now):
            _delete(ec2, scope, snapshot, result)
    return result


def tagged_instances(
    ec2: Any, tag: str, default_days: int
) -> tuple[list[TaggedInstance], dict[str, str]]:
    """The instances that carry the backup tag now (EC2 is asked, not the hourly table), and
    those whose tag value means nothing kopter knows."""
    tagged, ignored = [], {}
    pages = ec2.get_paginator("describe_instances").paginate(
        Filters=[
            {"Name": "tag-key", "Values": [tag]},
            {"Name": "instance-state-name", "Values": LIVE_STATES},
        ],
        PaginationConfig={"PageSize": 1000},
    )
    for page in pages:
        for reservation in page["Reservations"]:
            for instance in reservation["Instances"]:
                value = {t["Key"]: t["Value"] for t in instance.get("Tags") or []}.get(tag, "")
                keep = retention(value, default_days)
                if keep is None:
                    if value.strip().lower() != "false":  # "false" opts out; others are typos
                        ignored[instance["InstanceId"]] = value
                    continue
                volumes = tuple(
                    m["Ebs"]["VolumeId"]
                    for m in instance.get("BlockDeviceMappings") or []
                    if "Ebs" in m
                )
                tagged.append(TaggedInstance(instance["InstanceId"], volumes, keep))
    return tagged, ignored


def kopter_snapshots(ec2: Any, tenant_id: str) -> list[KopterSnapshot]:
    """The account's own snapshots that kopter tagged as its own for this tenant."""
    pages = ec2.get_paginator("describe_snapshots").paginate(
        OwnerIds=["self"],
        Filters=[
            {"Name": f"tag:{MANAGED}", "Values": ["true"]},
            {"Name": f"tag:{TENANT}", "Values": [tenant_id]},
        ],
        PaginationConfig={"PageSize": 1000},
    )
    return [
        KopterSnapshot(
            s["SnapshotId"], s["State"], {t["Key"]: t["Value"] for t in s.get("Tags") or []}
        )
        for page in pages
        for s in page["Snapshots"]
    ]


def _back_up_volume(
    ec2: Any,
    scope: Scope,
    instance: TaggedInstance,
    volume_id: str,
    window: datetime,
    made: KopterSnapshot | None,
    settings: Settings,
    now: datetime,
) -> VolumeBackup:
    expires = window + instance.retention
    item, ours = _claim(scope, instance.instance_id, volume_id, window, expires, settings, now)
    if not ours:
        status = EXISTS if item.snapshot_id else IN_PROGRESS
        return VolumeBackup(volume_id, instance.instance_id, status, item.snapshot_id)
    if made is not None:  # created by a run that crashed before recording it
        _record(item, made.snapshot_id, made.state)
        return VolumeBackup(volume_id, instance.instance_id, ADOPTED, made.snapshot_id)
    key = window_key(window)
    tags = {
        MANAGED: "true",
        TENANT: scope.tenant_id,
        INSTANCE: instance.instance_id,
        VOLUME: volume_id,
        WINDOW: key,
        EXPIRES: window_key(expires),
    }
    try:
        snapshot = ec2.create_snapshot(
            VolumeId=volume_id,
            Description=f"kopter backup of {volume_id} ({instance.instance_id}), window {key}",
            TagSpecifications=[
                {
                    "ResourceType": "snapshot",
                    "Tags": [{"Key": k, "Value": v} for k, v in tags.items()],
                }
            ],
        )
    except (ClientError, BotoCoreError) as e:
        error = aws_error(e)
        item.update(actions=[Ec2Snapshot.state.set(FAILED), Ec2Snapshot.failure.set(error)])
        return VolumeBackup(volume_id, instance.instance_id, FAILED, error=error)
    _record(item, snapshot["SnapshotId"], snapshot["State"])
    return VolumeBackup(volume_id, instance.instance_id, CREATED, snapshot["SnapshotId"])


def _claim(
    scope: Scope,
    instance_id: str,
    volume_id: str,
    window: datetime,
    expires: datetime,
    settings: Settings,
    now: datetime,
) -> tuple[Ec2Snapshot, bool]:
    """The (volume, window) item, and whether this run holds its claim and must act."""
    item = Ec2Snapshot(
        scope.tenant_account,
        scope.item_key(volume_id, window_key(window)),
        tenant_id=scope.tenant_id,
        account_id=scope.account_id,
        region=scope.region,
        volume_id=volume_id,
        instance_id=instance_id,
        state=CLAIMED,
        created_at=now,
        expires_on=expires,
        expires_at=expires + HISTORY,
    )
    if dynamo.put_if_absent(item):
        return item, True
    stored = Ec2Snapshot.get(item.tenant_account, item.volume_window, consistent_read=True)
    # A failed volume is tried again; a claim older than the task time limit was left by a run
    # that the hard limit (or a crash) ended.
    stale = stored.state == CLAIMED and now - stored.created_at > timedelta(
        seconds=settings.task_time_limit
    )
    if stored.state != FAILED and not stale:
        return stored, False
    taken = dynamo.update_if(
        stored,
        [
            Ec2Snapshot.state.set(CLAIMED),
            Ec2Snapshot.created_at.set(now),
            Ec2Snapshot.instance_id.set(instance_id),
            Ec2Snapshot.expires_on.set(expires),
            Ec2Snapshot.expires_at.set(expires + HISTORY),
            Ec2Snapshot.failure.remove(),
        ],
        # Of runs racing to take it over, one wins.
        (Ec2Snapshot.state == stored.state) & (Ec2Snapshot.created_at == stored.created_at),
    )
    return stored, taken


def _item_state(ec2_state: str) -> str:
    return {"completed": COMPLETED, "error": FAILED}.get(ec2_state, PENDING)


def _record(item: Ec2Snapshot, snapshot_id: str, ec2_state: str) -> None:
    state = _item_state(ec2_state)
    actions: list[Action] = [
        Ec2Snapshot.snapshot_id.set(snapshot_id),
        Ec2Snapshot.state.set(state),
    ]
    if state == FAILED:
        actions.append(Ec2Snapshot.failure.set("EC2 reports the snapshot in error"))
    item.update(actions=actions)


def _settle_pending(scope: Scope, made: list[KopterSnapshot]) -> None:
    """Record the end state of snapshots earlier runs left pending. One EC2 does not list yet
    (its listing is eventually consistent) is left as it is."""
    by_id = {s.snapshot_id: s for s in made}
    for item in Ec2Snapshot.query(
        scope.tenant_account,
        Ec2Snapshot.volume_window.startswith(Ec2Snapshot.region_prefix(scope.region)),
        filter_condition=Ec2Snapshot.state == PENDING,
    ):
        snapshot = by_id.get(item.snapshot_id or "")
        if snapshot is not None and _item_state(snapshot.state) != PENDING:
            _record(item, snapshot.snapshot_id, snapshot.state)


def _expired(snapshot: KopterSnapshot, tenant_id: str, now: datetime) -> bool:
    # The listing's tag filter is EC2's; a deletion checks the tags itself.
    tags = snapshot.tags
    if tags.get(MANAGED) != "true" or tags.get(TENANT) != tenant_id:
        return False
    try:
        expires = datetime.fromisoformat(tags.get(EXPIRES, ""))
    except ValueError:
        return False  # an expiry kopter cannot read is never a reason to delete
    if expires.tzinfo is None:
        expires = expires.replace(tzinfo=UTC)
    return expires <= now


def _delete(ec2: Any, scope: Scope, snapshot: KopterSnapshot, result: RegionBackup) -> None:
    try:
        ec2.delete_snapshot(SnapshotId=snapshot.snapshot_id)
    except ClientError as e:
        if e.response["Error"].get("Code") != "InvalidSnapshot.NotFound":
            result.expiry_failures.append(f"{snapshot.snapshot_id}: {aws_error(e)}")
            return
    except BotoCoreError as e:
        result.expiry_failures.append(f"{snapshot.snapshot_id}: {aws_error(e)}")
        return
    result.expired.append(snapshot.snapshot_id)
    volume, window = snapshot.tags.get(VOLUME), snapshot.tags.get(WINDOW)
    if not volume or not window:
        return
    dynamo.update_if(  # not updated: no item of this snapshot
        Ec2Snapshot(scope.tenant_account, scope.item_key(volume, window)),
        [Ec2Snapshot.state.set(DELETED)],
        Ec2Snapshot.snapshot_id == snapshot.snapshot_id,
    )


def failure_notice(tenant_id: str, account_id: str, result: RegionBackup) -> Notice:
    """The one notice of a window's failed backups in an account: identified by the window, so
    a repeated run (or a second region) raises the same notice, stored once."""
    failed = result.failed
    shown = "; ".join(f"{v.volume_id} of {v.instance_id} ({v.error})" for v in failed[:10])
    more = f" and {len(failed) - 10} more" if len(failed) > 10 else ""
    return Notice(
        tenant_id=tenant_id,
        kind="backup-failed",
        subject=f"account:{account_id}",
        occurred_at=result.window,
        severity="high",
        title=f"The backup of {len(failed)} volume(s) in AWS account {account_id} failed",
        body=(
            f"kopter could not snapshot, in {result.region}, for the backup of {result.window}: "
            f"{shown}{more}. The other volumes were backed up; the next run tries again."
        ),
        links={"account": account_id, "region": result.region},
    )
