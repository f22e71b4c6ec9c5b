"""The hourly describer: one (account, region) described, compared with what kopter last saw,
and the difference written as Ec2Events.

Idempotent: a run carries the time it was scheduled for (``run_at``), and every event's key is
derived from the instance, the kind and the time of the change (``kopter.ec2.events``), so a
redelivered run writes the same events again rather than new ones. Instances that did not change
cost no write; the (account, region)'s last description time is kept once in the Global table.
Changes EC2 dates (a launch, a start, a stop or termination with its reason's time) carry that
time; the others (resized, retagged, an instance gone from the listing) carry ``run_at``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from kopter import dynamo
from kopter.ec2 import events
from kopter.ec2.events import Change
from kopter.ec2.instances import InstanceState
from kopter.settings import Settings
from kopter.tables import Ec2Instance, GlobalItem

TERMINATED_ROW_DAYS = 30
# A new state and the event it means; passing states (pending, stopping, …) mean none yet.
STATE_EVENTS = {"running": "started", "stopped": "stopped", "terminated": "terminated"}


def diff(
    previous: dict[str, InstanceState], current: list[InstanceState], run_at: datetime
) -> list[Change]:
    changes = []
    for now in current:
        before = previous.get(now.instance_id)
        if before is None:
            if now.state != "terminated":  # one that came and went unseen is not news
                changes.append(
                    Change(
                        now.instance_id,
                        now.region,
                        "launched",
                        now.launch_time or run_at,
                        {"instance_type": now.instance_type},
                    )
                )
            continue
        # pending -> running is the end of a launch, not a start.
        if before.state != now.state and now.state in STATE_EVENTS and before.state != "pending":
            kind = STATE_EVENTS[now.state]
            when = now.launch_time if kind == "started" else now.transition_time
            changes.append(
                Change(now.instance_id, now.region, kind, when or run_at, {"from": before.state})
            )
        if before.instance_type != now.instance_type:
            changes.append(
                Change(
                    now.instance_id,
                    now.region,
                    "resized",
                    run_at,
                    {"from": before.instance_type, "to": now.instance_type},
                )
            )
        if before.tags != now.tags:
            changes.append(
                Change(
                    now.instance_id,
                    now.region,
                    "retagged",
                    run_at,
                    _tag_changes(before.tags, now.tags),
                )
            )
    listed = {i.instance_id for i in current}
    for gone in previous.values():
        if gone.instance_id not in listed and gone.state != "terminated":
            changes.append(
                Change(
                    gone.instance_id,
                    gone.region,
                    "terminated",
                    run_at,
                    {"from": gone.state, "disappeared": True},
                )
            )
    return changes


def _tag_changes(before: dict[str, str], after: dict[str, str]) -> dict[str, Any]:
    return {
        "added": {k: v for k, v in after.items() if k not in before},
        "removed": sorted(k for k in before if k not in after),
        "changed": {k: [before[k], v] for k, v in after.items() if k in before and before[k] != v},
    }


@dataclass(frozen=True)
class Described:
    instances: int
    written: int
    changes: list[Change]


def record(
    tenant_id: str,
    account_id: str,
    region: str,
    current: list[InstanceState],
    run_at: datetime,
    settings: Settings,
) -> Described:
    """Compare ``current`` with the stored rows, write the changed rows and the events."""
    rows = {
        row.instance_id: row
        for row in Ec2Instance.query(
            Ec2Instance.account_key(tenant_id, account_id),
            Ec2Instance.region_instance.startswith(Ec2Instance.region_prefix(region)),
        )
    }
    previous = {instance_id: _state(row) for instance_id, row in rows.items()}
    changes = diff(previous, current, run_at)
    events.record_many(tenant_id, account_id, changes, events.DESCRIBER, settings)

    # A row is written when anything kopter keeps of the instance changed, event or not (a
    # volume attached, a passing state): an unchanged instance costs no write.
    updates = []
    for instance in current:
        if previous.get(instance.instance_id) != instance:
            row = rows.get(instance.instance_id)
            first_seen = row.first_seen_at if row else run_at
            updates.append(_row(tenant_id, account_id, instance, first_seen, run_at).serialize())
    listed = {i.instance_id for i in current}
    for instance_id, row in rows.items():
        if instance_id not in listed and row.state != "terminated":
            row.state = "terminated"
            row.state_changed_at = run_at
            row.expires_at = run_at + timedelta(days=TERMINATED_ROW_DAYS)
            updates.append(row.serialize())
    written = dynamo.batch_put(Ec2Instance.Meta.table_name, updates, settings)
    GlobalItem(
        GlobalItem.described_key(tenant_id, account_id, region),
        value={"run_at": run_at.isoformat(), "instances": len(current)},
        updated_at=datetime.now(UTC),
    ).save()
    return Described(len(current), written, changes)


def _state(row: Ec2Instance) -> InstanceState:
    return InstanceState(
        instance_id=row.instance_id,
        region=row.region,
        state=row.state,
        instance_type=row.instance_type,
        platform=row.platform,
        tenancy=row.tenancy,
        lifecycle=row.lifecycle,
        availability_zone=row.availability_zone,
        launch_time=row.launch_time,
        transition_time=row.state_changed_at,
        tags=dict(row.tags or {}),
        volume_ids=tuple(row.volume_ids),
    )


def _row(
    tenant_id: str, account_id: str, i: InstanceState, first_seen: datetime, run_at: datetime
) -> Ec2Instance:
    return Ec2Instance(
        Ec2Instance.account_key(tenant_id, account_id),
        Ec2Instance.instance_key(i.region, i.instance_id),
        tenant_id=tenant_id,
        account_id=account_id,
        region=i.region,
        instance_id=i.instance_id,
        state=i.state,
        instance_type=i.instance_type,
        platform=i.platform,
        tenancy=i.tenancy,
        lifecycle=i.lifecycle,
        availability_zone=i.availability_zone,
        launch_time=i.launch_time,
        tags=i.tags,
        volume_ids=list(i.volume_ids),
        first_seen_at=first_seen,
        last_seen_at=run_at,
        state_changed_at=i.transition_time,
        expires_at=(run_at + timedelta(days=TERMINATED_ROW_DAYS))
        if i.state == "terminated"
        else None,
    )
