"""The backup job on moto's EC2: a snapshot per volume of each tagged instance, once per window,
expiry that deletes only kopter's own snapshots, and a failing volume that stops nothing else."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kopter import accounts
from kopter.crossaccount import shared_sessions
from kopter.ec2 import backup
from kopter.settings import get_settings
from kopter.tables import Ec2Snapshot
from tasks.backup import back_up_account_region
from tests.conftest import MOTO_PORT, customer_client, wait_for
from tests.support.drain import wait_drained
from tests.support.proxy import RecordingProxy

pytestmark = pytest.mark.long

# This suite's default time limit is 4 s; a run with throttling backoff can take longer.
LONG = {"KOPTER_TASK_TIME_LIMIT": "60"}
REGION = "us-east-1"


@dataclass(frozen=True)
class Launched:
    instance_id: str
    volumes: list[str]  # the root volume first


def _launch(ec2: Any, backup_tag: str | None, extra_volume: bool = False) -> Launched:
    tags = [{"Key": "role", "Value": "db"}]
    if backup_tag is not None:
        tags.append({"Key": "kopter:backup", "Value": backup_tag})
    [instance] = ec2.run_instances(
        ImageId="ami-0123456789abcdef0",
        InstanceType="t3.micro",
        MinCount=1,
        MaxCount=1,
        TagSpecifications=[{"ResourceType": "instance", "Tags": tags}],
    )["Instances"]
    volumes = [m["Ebs"]["VolumeId"] for m in instance["BlockDeviceMappings"]]
    if extra_volume:
        zone = instance["Placement"]["AvailabilityZone"]
        volume = ec2.create_volume(Size=8, AvailabilityZone=zone)["VolumeId"]
        ec2.attach_volume(VolumeId=volume, InstanceId=instance["InstanceId"], Device="/dev/sdf")
        volumes.append(volume)
    return Launched(instance["InstanceId"], volumes)


def _snapshots_of(ec2: Any, volumes: list[str]) -> list[dict[str, Any]]:
    """Every snapshot of these volumes, kopter's or not, with its tags as a dict."""
    found = ec2.describe_snapshots(
        OwnerIds=["self"], Filters=[{"Name": "volume-id", "Values": volumes}]
    )["Snapshots"]
    return [{**s, "Tags": {t["Key"]: t["Value"] for t in s.get("Tags") or []}} for s in found]


def _kopter_tags(tenant: str, instance: str, volume: str, window: str, expires: str) -> list:
    return [
        {"Key": k, "Value": v}
        for k, v in {
            backup.MANAGED: "true",
            backup.TENANT: tenant,
            backup.INSTANCE: instance,
            backup.VOLUME: volume,
            backup.WINDOW: window,
            backup.EXPIRES: expires,
        }.items()
    ]


def _kopter_ec2(c) -> Any:
    """kopter's own client in the customer's account, as a worker has it."""
    target = accounts.target(accounts.get_account(c.tenant, c.account))
    return shared_sessions(get_settings()).client(target, "ec2", REGION)


def _back_up(c, window: str) -> dict[str, Any]:
    """One region's task, delivered (again) for ``window``."""
    result = back_up_account_region.apply_async(
        (c.tenant, c.account, REGION, window), time_limit=60, soft_time_limit=55
    )
    return result.get(timeout=90)


def _drained(kopter) -> None:
    """Every backup message handled and deleted (test_bootstrap counts this queue's depth)."""

    def empty() -> bool:
        [row] = [r for r in kopter.rows("status") if r.get("queue") == "backup"]
        return row["visible"] == row["in_flight"] == row["delayed"] == row["dlq_visible"] == 0

    wait_for(empty, 30, "the backup queue drained")


def test_window_and_retention_of_a_tag_value():
    assert backup.window_start(datetime(2026, 11, 27, 11, 59, tzinfo=UTC)) == datetime(
        2026, 11, 27, 0, 0, tzinfo=UTC
    )
    assert backup.window_start(datetime(2026, 11, 27, 12, 0, tzinfo=UTC)).hour == 12
    assert backup.retention("true", 7) == timedelta(days=7)
    assert backup.retention(" TRUE ", 7) == timedelta(days=7)
    assert backup.retention("30d", 7) == timedelta(days=30)
    for value in ("false", "", "0d", "7", "1w", "-1d", "d"):
        assert backup.retention(value, 7) is None, value


def test_tagged_instances_get_one_snapshot_per_volume_per_window(kopter, workers):
    c = kopter.connect()
    # A second account of the tenant whose role fails: its backups wait until it is healthy.
    broken = kopter.connect(tenant=c.tenant)
    accounts.record_health(
        accounts.get_account(c.tenant, broken.account),
        [accounts.Check("assume-role", False, "AccessDenied: not authorized")],
    )
    ec2 = customer_client(c, "ec2")
    daily = _launch(ec2, "true", extra_volume=True)
    weekly = _launch(ec2, "3d")
    untagged = _launch(ec2, None)
    unreadable = _launch(ec2, "weekly")
    opted_out = _launch(ec2, "false")
    worker = workers.start("backup", "backup,notifications", env=LONG)
    workers.wait_ready(worker)

    out = kopter("run", "backup", "--tenant", c.tenant, "--wait", "--timeout", "90", env=LONG)
    summary = json.loads(out.stdout[out.stdout.index("{") :])
    window = summary["window"]
    assert window.endswith(("T00:00:00Z", "T12:00:00Z"))
    assert summary["regions_backed_up"] == 1 and summary["skipped_unhealthy_accounts"] == 1
    assert (summary["instances"], summary["created"], summary["existing"]) == (2, 3, 0)
    assert summary["failed_volumes"] == [] and summary["expired"] == 0

    start = datetime.fromisoformat(window)
    taken = _snapshots_of(ec2, daily.volumes + weekly.volumes + untagged.volumes)
    by_volume = {s["VolumeId"]: s for s in taken}
    assert len(taken) == 3 and set(by_volume) == {*daily.volumes, *weekly.volumes}
    for launched, days in ((daily, 7), (weekly, 3)):
        for volume in launched.volumes:
            assert by_volume[volume]["Tags"] == {
                "kopter:managed": "true",
                "kopter:tenant": c.tenant,
                "kopter:instance": launched.instance_id,
                "kopter:volume": volume,
                "kopter:window": window,
                "kopter:expires": backup.window_key(start + timedelta(days=days)),
            }
    assert not _snapshots_of(ec2, unreadable.volumes + opted_out.volumes)

    rows = kopter.rows("snapshots", "--tenant", c.tenant)
    assert sorted((r["volume_id"], r["snapshot_id"], r["state"], r["window"]) for r in rows) == (
        sorted((v, s["SnapshotId"], "completed", window) for v, s in by_volume.items())
    )
    [weekly_row] = [r for r in rows if r["instance_id"] == weekly.instance_id]
    assert weekly_row["expires_on"].startswith(f"{(start + timedelta(days=3)):%Y-%m-%dT%H}")
    assert kopter.rows("snapshots", "--tenant", c.tenant, "--account", broken.account) == []
    assert "instance_id" in kopter("snapshots", "--tenant", c.tenant).stdout.splitlines()[0].lower()

    # The same window again (a redelivered message, a second `kopter run`): nothing new.
    again = _back_up(c, window)
    assert (again["created"], again["existing"], again["ignored"]) == (
        0,
        3,
        {unreadable.instance_id: "weekly"},
    )
    assert len(_snapshots_of(ec2, daily.volumes + weekly.volumes)) == 3
    assert kopter.rows("notifications", "--tenant", c.tenant) == []
    _drained(kopter)


def test_a_run_repeated_after_a_crash_adopts_or_creates_and_never_duplicates(kopter):
    # A claim younger than KOPTER_TASK_TIME_LIMIT is a running run's: production's 15 minutes
    # here, not the suite's 4 s, which a loaded machine spends before the runs below reach it.
    settings = dataclasses.replace(get_settings(), task_time_limit=900)
    c = kopter.connect()
    ec2 = customer_client(c, "ec2")
    crashed = _launch(ec2, "true", extra_volume=True)
    busy = _launch(ec2, "true")
    root, data = crashed.volumes
    now = datetime.now(UTC)
    start = backup.window_start(now)
    window, expires = backup.window_key(start), start + timedelta(days=7)

    def item(volume: str, instance: str, state: str, at: datetime, **kw: Any) -> Ec2Snapshot:
        made = Ec2Snapshot(
            f"{c.tenant}#{c.account}",
            f"{REGION}#{volume}#{kw.pop('window', window)}",
            tenant_id=c.tenant,
            account_id=c.account,
            region=REGION,
            volume_id=volume,
            instance_id=instance,
            state=state,
            created_at=at,
            expires_on=expires,
            **kw,
        )
        made.save()
        return made

    # A run claimed both volumes an hour ago, past the time limit, and died: before CreateSnapshot
    # for the root volume, after it (the snapshot exists, tagged, unrecorded) for the data volume.
    item(root, crashed.instance_id, "claimed", now - timedelta(hours=1))
    item(data, crashed.instance_id, "claimed", now - timedelta(hours=1))
    orphan = ec2.create_snapshot(
        VolumeId=data,
        TagSpecifications=[
            {
                "ResourceType": "snapshot",
                "Tags": _kopter_tags(
                    c.tenant, crashed.instance_id, data, window, backup.window_key(expires)
                ),
            }
        ],
    )["SnapshotId"]
    # A claim taken a moment ago belongs to a run still going: left to it.
    item(busy.volumes[0], busy.instance_id, "claimed", now)
    # The previous window's snapshot of the data volume, recorded while EC2 still said pending.
    previous = backup.window_key(start - timedelta(hours=12))
    earlier = ec2.create_snapshot(
        VolumeId=data,
        TagSpecifications=[
            {
                "ResourceType": "snapshot",
                "Tags": _kopter_tags(
                    c.tenant, crashed.instance_id, data, previous, backup.window_key(expires)
                ),
            }
        ],
    )["SnapshotId"]
    item(data, crashed.instance_id, "pending", now, window=previous, snapshot_id=earlier)

    scope = backup.Scope(c.tenant, c.account, REGION)
    for attempt in range(2):
        result = backup.back_up_region(_kopter_ec2(c), scope, start, settings)
        statuses = {v.volume_id: v.status for v in result.volumes}
        if attempt == 0:
            assert statuses == {root: "created", data: "adopted", busy.volumes[0]: "in-progress"}
        else:
            assert statuses == {root: "exists", data: "exists", busy.volumes[0]: "in-progress"}

    snapshots = _snapshots_of(ec2, [root, data, busy.volumes[0]])
    assert sorted(s["VolumeId"] for s in snapshots) == sorted([root, data, data])
    [created] = [s for s in snapshots if s["VolumeId"] == root]
    stored = {i.volume_window: i for i in Ec2Snapshot.query(f"{c.tenant}#{c.account}")}
    assert stored[f"{REGION}#{root}#{window}"].snapshot_id == created["SnapshotId"]
    assert stored[f"{REGION}#{data}#{window}"].snapshot_id == orphan
    assert stored[f"{REGION}#{data}#{window}"].state == "completed"
    assert stored[f"{REGION}#{data}#{previous}"].state == "completed"  # settled from EC2
    assert stored[f"{REGION}#{busy.volumes[0]}#{window}"].snapshot_id is None


def test_expired_kopter_snapshots_are_deleted_and_no_other_snapshot_is(kopter):
    c = kopter.connect()
    ec2 = customer_client(c, "ec2")
    [volume] = _launch(ec2, "2d").volumes
    scope = backup.Scope(c.tenant, c.account, REGION)
    long_ago = backup.window_start(datetime.now(UTC)) - timedelta(days=5)

    # The run of five days ago, in its own time: a snapshot kept two days, so expired now.
    first = backup.back_up_region(_kopter_ec2(c), scope, long_ago, get_settings(), now=long_ago)
    [old] = first.volumes
    assert old.status == "created" and first.expired == []

    # The customer's own snapshot, with a (forged) table item saying kopter took it and it
    # expired: its tags say it is not kopter's, so it stays.
    foreign = ec2.create_snapshot(VolumeId=volume, Description="the customer's own")["SnapshotId"]
    forged = Ec2Snapshot(
        f"{c.tenant}#{c.account}",
        f"{REGION}#{volume}#2020-01-01T00:00:00Z",
        tenant_id=c.tenant,
        account_id=c.account,
        region=REGION,
        volume_id=volume,
        instance_id="i-0000000000000000",
        snapshot_id=foreign,
        state="completed",
        created_at=datetime(2020, 1, 1, tzinfo=UTC),
        expires_on=datetime(2020, 1, 2, tzinfo=UTC),
    )
    forged.save()
    # kopter's tags, but for another tenant: not this tenant's to delete.
    other_tenant = ec2.create_snapshot(
        VolumeId=volume,
        TagSpecifications=[
            {
                "ResourceType": "snapshot",
                "Tags": _kopter_tags(
                    "someone-else", "i-1", volume, "2020-01-01T00:00:00Z", "2020-01-02"
                ),
            }
        ],
    )["SnapshotId"]

    current = backup.window_start(datetime.now(UTC))
    second = backup.back_up_region(_kopter_ec2(c), scope, current, get_settings())
    assert second.expired == [old.snapshot_id] and second.expiry_failures == []
    [new] = second.volumes
    remaining = {s["SnapshotId"] for s in _snapshots_of(ec2, [volume])}
    assert remaining == {foreign, other_tenant, new.snapshot_id}
    old_item = Ec2Snapshot.get(f"{c.tenant}#{c.account}", f"{REGION}#{volume}#{first.window}")
    assert old_item.state == "deleted"
    forged.refresh()
    assert forged.state == "completed"


INCORRECT_STATE = (
    b"<Response><Errors><Error><Code>IncorrectState</Code><Message>The volume is in use by "
    b"another snapshot.</Message></Error></Errors><RequestID>1</RequestID></Response>"
)


def test_a_failing_volume_is_reported_once_and_stops_no_other(kopter, workers):
    c = kopter.connect()
    ec2 = customer_client(c, "ec2")
    launched = _launch(ec2, "true", extra_volume=True)
    good, bad = launched.volumes
    window = backup.window_key(backup.window_start(datetime.now(UTC)))

    def refuse(request):
        if b"Action=CreateSnapshot" in request.body and bad.encode() in request.body:
            return 400, INCORRECT_STATE
        return None

    with RecordingProxy(MOTO_PORT, fault=refuse) as proxy:
        worker = workers.start(
            "backup-faulty",
            "backup,notifications",
            env={"KOPTER_AWS_ENDPOINT_URL": proxy.url, **LONG},
        )
        workers.wait_ready(worker)
        first = _back_up(c, window)
        second = _back_up(c, window)  # the same window again: the failed volume is tried again
        wait_for(lambda: kopter.rows("notifications", "--tenant", c.tenant), 30, "the notice")
        wait_drained("notifications")  # a second notice would have landed by now
        _drained(kopter)
    creates = [r for r in proxy.requests if b"Action=CreateSnapshot" in r.body]
    assert len(creates) == 3  # good once, bad twice
    assert (first["created"], second["created"], second["existing"]) == (1, 0, 1)
    for result in (first, second):
        [failed] = result["failed"]
        assert failed["volume_id"] == bad and failed["instance_id"] == launched.instance_id
        assert failed["error"].startswith("IncorrectState:")
    [taken] = _snapshots_of(ec2, [good, bad])
    assert taken["VolumeId"] == good

    [notice] = kopter.rows("notifications", "--tenant", c.tenant)
    assert notice["kind"] == "backup-failed" and notice["severity"] == "high"
    assert c.account in notice["title"] and bad in notice["body"]
    assert "IncorrectState" in notice["body"]
    rows = {r["volume_id"]: r for r in kopter.rows("snapshots", "--tenant", c.tenant)}
    assert rows[good]["state"] == "completed" and rows[good]["snapshot_id"] == taken["SnapshotId"]
    assert rows[bad]["state"] == "failed" and rows[bad]["snapshot_id"] is None
    assert rows[bad]["failure"].startswith("IncorrectState:")
