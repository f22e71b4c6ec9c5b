"""The EC2 describer on real workers and moto's EC2: exactly the events that happened."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import quote_plus

import pytest

from kopter import accounts
from kopter.devstack import spawn
from kopter.ec2.instances import InstanceState
from kopter.tables import AwsAccount, Ec2Instance, GlobalItem
from tasks.describer import describe_account_region
from tests.conftest import MOTO_PORT, OUTPUT, customer_client, new_account_id, wait_for
from tests.support.drain import wait_drained
from tests.support.proxy import RecordingProxy
from tests.support.samples import FIXTURES, ROOT

pytestmark = pytest.mark.long

DESCRIBE_INSTANCES = (
    FIXTURES / "ec2" / "cloud-custodian_test_ec2_metric_extended_stats_ec2.DescribeInstances_1.json"
)


def _placebo(value):
    """cloud-custodian's recordings write datetimes as {"__class__": "datetime", ...}."""
    if isinstance(value, dict):
        if value.get("__class__") == "datetime":
            fields = {k: v for k, v in value.items() if k != "__class__"}
            return datetime(**fields, tzinfo=UTC)
        return {k: _placebo(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_placebo(v) for v in value]
    return value


def test_real_describe_instances_response_parses():
    response = _placebo(json.loads(DESCRIBE_INSTANCES.read_text())["data"])
    states = [
        InstanceState.from_api(i, "us-east-2")
        for r in response["Reservations"]
        for i in r["Instances"]
    ]
    assert len(states) == 3
    first = states[0]
    assert first.state == "stopped"
    assert first.platform == "Linux/UNIX" and first.tenancy == "default"
    assert first.availability_zone == "us-east-2b" and first.lifecycle == "on-demand"
    assert first.launch_time == datetime(2025, 3, 5, 15, 39, 17, tzinfo=UTC)
    assert first.transition_time == datetime(2025, 3, 6, 14, 33, 58, tzinfo=UTC)
    assert first.tags["Name"] == "samltesting"
    assert first.volume_ids == ("vol-07561130d3a555dc7", "vol-011c7805addba4274")


def _describe(c, run_at: str) -> dict:
    # This suite's default time limit is 4 s; throttling backoff alone can take longer.
    result = describe_account_region.apply_async(
        (c.tenant, c.account, "us-east-1", run_at), time_limit=60, soft_time_limit=55
    )
    return result.get(timeout=90)


def _events(kopter, tenant: str) -> list[tuple[str, str]]:
    return sorted((e["instance_id"], e["kind"]) for e in kopter.rows("events", "--tenant", tenant))


def test_changes_between_runs_become_exactly_the_right_events(kopter, workers):
    c = kopter.connect()
    worker = workers.start("describer", "describer")
    workers.wait_ready(worker)
    ec2 = customer_client(c, "ec2")
    launched = ec2.run_instances(
        ImageId="ami-0123456789abcdef0",
        InstanceType="t3.micro",
        MinCount=4,
        MaxCount=4,
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "role", "Value": "web"}]}],
    )["Instances"]
    a, b, cc, d = (i["InstanceId"] for i in launched)

    first = _describe(c, "2026-11-27T10:00:00+00:00")
    assert first["events"] == {"launched": 4} and first["written"] == 4
    assert _events(kopter, c.tenant) == sorted((i, "launched") for i in (a, b, cc, d))

    ec2.stop_instances(InstanceIds=[a, cc])
    ec2.modify_instance_attribute(InstanceId=cc, InstanceType={"Value": "m5.large"})
    ec2.create_tags(Resources=[b], Tags=[{"Key": "env", "Value": "prod"}])
    ec2.delete_tags(Resources=[b], Tags=[{"Key": "role"}])
    ec2.terminate_instances(InstanceIds=[d])

    second = _describe(c, "2026-11-27T11:00:00+00:00")
    assert second["events"] == {"stopped": 2, "resized": 1, "retagged": 1, "terminated": 1}
    expected = sorted(
        [(i, "launched") for i in (a, b, cc, d)]
        + [(a, "stopped"), (cc, "stopped"), (cc, "resized"), (b, "retagged"), (d, "terminated")]
    )
    assert _events(kopter, c.tenant) == expected
    rows = kopter.rows("events", "--tenant", c.tenant)
    # EC2's own times where it gives them (launch, and the time in a stop's or termination's
    # reason); a resize or retag, which EC2 does not date, carries the run's hour.
    seen = {
        i["InstanceId"]: InstanceState.from_api(i, "us-east-1")
        for r in ec2.describe_instances(InstanceIds=[a, b, cc, d])["Reservations"]
        for i in r["Instances"]
    }
    run_hour = datetime(2026, 11, 27, 11, tzinfo=UTC)
    expected_times = {(i, "launched"): seen[i].launch_time for i in (a, b, cc, d)}
    for i, kind in ((a, "stopped"), (cc, "stopped"), (d, "terminated")):
        assert seen[i].transition_time not in (None, run_hour), seen[i]
        expected_times[i, kind] = seen[i].transition_time
    expected_times |= {(cc, "resized"): run_hour, (b, "retagged"): run_hour}
    times = {(e["instance_id"], e["kind"]): datetime.fromisoformat(e["occurred_at"]) for e in rows}
    assert times == expected_times
    [resized] = [e for e in rows if e["kind"] == "resized"]
    assert resized["detail"] == {"from": "t3.micro", "to": "m5.large"}
    [retagged] = [e for e in rows if e["kind"] == "retagged"]
    assert retagged["detail"] == {"added": {"env": "prod"}, "removed": ["role"], "changed": {}}

    # The same run delivered again, then an hour where nothing changed: nothing new.
    assert _describe(c, "2026-11-27T11:00:00+00:00")["events"] == {}
    quiet = _describe(c, "2026-11-27T12:00:00+00:00")
    assert quiet["events"] == {} and quiet["written"] == 0
    assert _events(kopter, c.tenant) == expected

    # A volume attached is no event, but the row must know it (the backup job reads it).
    zone = launched[1]["Placement"]["AvailabilityZone"]
    volume = ec2.create_volume(Size=8, AvailabilityZone=zone)["VolumeId"]
    ec2.attach_volume(VolumeId=volume, InstanceId=b, Device="/dev/sdf")
    attached = _describe(c, "2026-11-27T13:00:00+00:00")
    assert attached["events"] == {} and attached["written"] == 1
    assert volume in Ec2Instance.get(f"{c.tenant}#{c.account}", f"us-east-1#{b}").volume_ids
    assert _events(kopter, c.tenant) == expected
    row = Ec2Instance.get(f"{c.tenant}#{c.account}", f"us-east-1#{cc}")
    assert (row.state, row.instance_type) == ("stopped", "m5.large")
    assert len(kopter.rows("events", "--tenant", c.tenant, "--account", c.account)) == 9


def test_an_account_added_while_beat_runs_is_described_without_a_restart(kopter, workers):
    tenant = kopter.new_tenant()
    env = {"KOPTER_TEST_BEAT_TENANT": tenant}
    worker = workers.start("describer-beat", "describer", env=env)
    beat = spawn(
        "describer-beat-beat",
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "tests.support.describer_beat",
            "beat",
            "-l",
            "INFO",
        ],
        {**os.environ, **env},
        OUTPUT / "logs",
        cwd=ROOT,
    )
    workers.children.append(beat)
    workers.wait_ready(worker)
    wait_for(
        lambda: "tasks.describer.describe_all_accounts" in worker.tail(100),
        60,
        "beat's first describer run",
    )
    c = kopter.connect("--regions", "eu-west-1", tenant=tenant)  # beat is not restarted
    customer_client(c, "ec2", "eu-west-1").run_instances(
        ImageId="ami-0123456789abcdef0", InstanceType="t3.nano", MinCount=1, MaxCount=1
    )

    # A beat run may describe the account between its connection and the launch: the next sees it.
    def described_with_its_instance():
        try:
            described = GlobalItem.get(f"described#{c.tenant}#{c.account}#eu-west-1").value
        except GlobalItem.DoesNotExist:
            return False
        return described["instances"] == 1

    wait_for(described_with_its_instance, 60, "the new account described with its instance")
    beat.stop()
    [event] = kopter.rows("events", "--tenant", c.tenant)
    assert event["kind"] == "launched" and event["region"] == "eu-west-1"


def test_run_describer_waits_for_the_run_and_then_triggers_the_aggregator(kopter, workers):
    c = kopter.connect("--regions", "us-east-1,eu-west-1")
    customer_client(c, "ec2", "eu-west-1").run_instances(
        ImageId="ami-0123456789abcdef0", InstanceType="t3.nano", MinCount=2, MaxCount=2
    )
    # Time limits travel with the message: a loaded machine must not turn 2 s into a kill.
    long = {"KOPTER_TASK_TIME_LIMIT": "60"}
    worker = workers.start("describer-run", "describer", env=long)
    workers.wait_ready(worker)
    aggregations = _visible(kopter, "aggregator")
    out = kopter(
        "run", "describer", "--tenant", c.tenant, "--wait", "--timeout", "90", env=long
    ).stdout
    summary = json.loads(out[out.index("{") :])
    assert summary["regions_described"] == 2 and summary["instances"] == 2
    assert summary["events"] == {"launched": 2} and summary["unhealthy"] == []
    # Every task of the run done: the chord enqueued the aggregator, once.
    wait_for(lambda: _visible(kopter, "aggregator") == aggregations + 1, 30, "the aggregator")


def _spread_offset(account: str, region: str, spread: int) -> int:
    """When, within a spread, tasks/describer.py starts the task of this account and region."""
    return int(hashlib.sha256(f"{account}/{region}".encode()).hexdigest(), 16) % spread


def test_a_run_a_person_asks_for_starts_every_task_now(kopter, workers):
    """Beat's hourly run spreads its tasks over KOPTER_DESCRIBE_SPREAD_SECONDS; `kopter run
    describer` starts them all at once, unless `--spread` asks for a spread."""
    setting = {"KOPTER_DESCRIBE_SPREAD_SECONDS": "900", "KOPTER_TASK_TIME_LIMIT": "60"}
    regions = ["us-east-1", "eu-west-1", "ap-southeast-2"]
    # An account whose every region the setting would start later than --timeout allows, and
    # one of whose regions a spread of 20 s would start 10 s late or more.
    account = next(
        a
        for a in iter(new_account_id, None)
        if min(_spread_offset(a, r, 900) for r in regions) > 300
        and max(_spread_offset(a, r, 20) for r in regions) >= 10
    )
    c = kopter.connect("--regions", ",".join(regions), account=account)
    worker = workers.start("describer-now", "describer", env=setting)
    workers.wait_ready(worker)
    run = ["run", "describer", "--tenant", c.tenant, "--wait", "--timeout", "100"]
    out = kopter(*run, env=setting).stdout
    assert json.loads(out[out.index("{") :])["regions_described"] == 3

    # Asked for: the last task starts no sooner than its place in the spread.
    latest = max(_spread_offset(account, r, 20) for r in regions)
    started = time.monotonic()
    out = kopter(*run, "--spread", "20", env=setting).stdout
    assert time.monotonic() - started >= latest
    assert json.loads(out[out.index("{") :])["regions_described"] == 3
    refused = kopter("run", "backup", "--spread", "20", ok=False)
    assert "--spread applies to `kopter run describer` only" in refused.stderr


def _visible(kopter, queue: str) -> int:
    [row] = [r for r in kopter.rows("status") if r.get("queue") == queue]
    return int(row["visible"])


def test_an_unhealthy_account_is_retried_after_a_backoff_that_doubles():
    checked = datetime(2026, 11, 27, 10, tzinfo=UTC)

    def due(failures: int, after: timedelta, healthy: bool = False) -> bool:
        account = AwsAccount(
            "t",
            "123456789012",
            healthy=healthy,
            health_checked_at=checked,
            consecutive_failures=failures,
        )
        return accounts.due_for_describe(account, checked + after)

    assert due(0, timedelta(0), healthy=True)
    for failures, hours in ((1, 1), (2, 2), (3, 4), (4, 8), (5, 16), (6, 24), (40, 24)):
        # The next hourly run may come a few minutes early: it is not a reason to wait an hour.
        assert due(failures, timedelta(hours=hours, minutes=-5)), failures
        assert not due(failures, timedelta(hours=hours, minutes=-10)), failures


ACCESS_DENIED = (
    b'<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>'
    b"<Code>AccessDenied</Code><Message>User is not authorized to perform: sts:AssumeRole"
    b"</Message></Error><RequestId>1</RequestId></ErrorResponse>"
)
THROTTLED = (
    b"<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded."
    b"</Message></Error></Errors><RequestID>1</RequestID></Response>"
)


def test_a_failing_role_marks_the_account_unhealthy_and_notifies_once(kopter, workers):
    c = kopter.connect()
    reachable = kopter.connect(tenant=c.tenant)
    role = quote_plus(f"arn:aws:iam::{c.account}:role/kopter").encode()

    def deny(request):
        if b"Action=AssumeRole" in request.body and role in request.body:
            return 403, ACCESS_DENIED
        return None

    # Time limits of the run's tasks come from the worker that fans it out.
    long = {"KOPTER_TASK_TIME_LIMIT": "60"}
    with RecordingProxy(MOTO_PORT, fault=deny) as proxy:
        worker = workers.start(
            "denied", "describer,notifications", env={"KOPTER_AWS_ENDPOINT_URL": proxy.url, **long}
        )
        workers.wait_ready(worker)
        for hour in (10, 11, 12):  # three hourly runs, all denied
            result = _describe(c, f"2026-11-27T{hour}:00:00+00:00")
            assert result["status"] == "unhealthy" and "AccessDenied" in result["reason"]
        wait_for(lambda: kopter.rows("notifications", "--tenant", c.tenant), 30, "the notice")
        wait_drained("notifications")  # the later notices would have landed by now
        # The tenant's run now: the account that failed three times waits out its backoff (four
        # hours), the run goes on for the other.
        out = kopter("run", "describer", "--tenant", c.tenant, "--wait", env=long).stdout
        run = json.loads(out[out.index("{") :])
        assert (run["skipped_unhealthy_accounts"], run["regions_described"]) == (1, 1), run
        assert run["unhealthy"] == []
    by_id = {a["account_id"]: a for a in kopter.rows("accounts", "list", "--tenant", c.tenant)}
    account = by_id[c.account]
    assert account["healthy"] is False and "AccessDenied" in account["health_reason"]
    assert by_id[reachable.account]["healthy"] is True
    [notice] = kopter.rows("notifications", "--tenant", c.tenant)
    assert notice["kind"] == "account-unhealthy" and notice["severity"] == "high"
    assert c.account in notice["title"] and "AccessDenied" in notice["body"]


def test_a_throttled_api_is_retried_and_the_run_completes(kopter, workers):
    c = kopter.connect()
    customer_client(c, "ec2").run_instances(
        ImageId="ami-0123456789abcdef0", InstanceType="t3.nano", MinCount=1, MaxCount=1
    )
    throttled = []

    def throttle(request):
        if b"Action=DescribeInstances" in request.body and len(throttled) < 2:
            throttled.append(request)
            return 503, THROTTLED
        return None

    with RecordingProxy(MOTO_PORT, fault=throttle) as proxy:
        worker = workers.start("throttled", "describer", env={"KOPTER_AWS_ENDPOINT_URL": proxy.url})
        workers.wait_ready(worker)
        result = _describe(c, "2026-11-27T10:00:00+00:00")
    assert len(throttled) == 2
    assert result["status"] == "described" and result["events"] == {"launched": 1}
    describes = [r for r in proxy.requests if b"Action=DescribeInstances" in r.body]
    assert len(describes) == 3  # two throttled, then answered: bounded by the retry mode


def _call(name: str, user: str, when: datetime, request: dict, response: dict | None = None):
    return {
        "eventVersion": "1.11",
        "eventTime": f"{when:%Y-%m-%dT%H:%M:%SZ}",
        "eventID": str(uuid.uuid4()),
        "eventSource": "ec2.amazonaws.com",
        "eventName": name,
        "awsRegion": "us-east-1",
        "userIdentity": {"type": "IAMUser", "arn": user},
        "requestParameters": request,
        "responseElements": response,
    }


def _ingest(kopter, tmp_path, c, records) -> None:
    for r in records:
        r["recipientAccountId"] = c.account
    path = tmp_path / f"{uuid.uuid4().hex}.json"
    path.write_text(json.dumps({"Records": records}))
    kopter("ingest", str(path), "--tenant", c.tenant)


def test_a_change_seen_by_cloudtrail_and_the_describer_is_one_event_with_its_principal(
    kopter, workers, tmp_path
):
    c = kopter.connect()
    worker = workers.start("describer-merge", "describer")
    workers.wait_ready(worker)
    ec2 = customer_client(c, "ec2")
    [instance] = ec2.run_instances(
        ImageId="ami-0123456789abcdef0", InstanceType="t3.micro", MinCount=1, MaxCount=1
    )["Instances"]
    iid, alice, bob = instance["InstanceId"], "arn:aws:iam::1:user/alice", "arn:aws:iam::1:user/bob"
    # CloudTrail first: the launch, at EC2's launch time.
    _ingest(
        kopter,
        tmp_path,
        c,
        [
            _call(
                "RunInstances",
                alice,
                instance["LaunchTime"],
                {"instanceType": "t3.micro"},
                {"instancesSet": {"items": [{"instanceId": iid}]}},
            )
        ],
    )
    _describe(c, datetime.now(UTC).isoformat())

    # Then the describer first: a stop and a resize, and CloudTrail's record of them after.
    ec2.stop_instances(InstanceIds=[iid])
    ec2.modify_instance_attribute(InstanceId=iid, InstanceType={"Value": "m5.large"})
    [described] = [
        i for r in ec2.describe_instances(InstanceIds=[iid])["Reservations"] for i in r["Instances"]
    ]
    stopped_at = InstanceState.from_api(described, "us-east-1").transition_time
    _describe(c, (datetime.now(UTC) + timedelta(minutes=1)).isoformat())
    _ingest(
        kopter,
        tmp_path,
        c,
        [
            _call(
                "StopInstances", bob, stopped_at, {"instancesSet": {"items": [{"instanceId": iid}]}}
            ),
            _call(
                "ModifyInstanceAttribute",
                bob,
                datetime.now(UTC),
                {"instanceId": iid, "instanceType": {"value": "m5.large"}},
            ),
        ],
    )

    rows = kopter.rows("events", "--tenant", c.tenant)
    assert sorted(e["kind"] for e in rows) == ["launched", "resized", "stopped"]
    by_kind = {e["kind"]: e for e in rows}
    assert by_kind["launched"]["principal_arn"] == alice
    assert by_kind["stopped"]["principal_arn"] == bob
    assert by_kind["resized"]["principal_arn"] == bob
    assert all(sorted(e["sources"]) == ["cloudtrail", "describer"] for e in rows), rows
    assert by_kind["resized"]["detail"] == {"from": "t3.micro", "to": "m5.large"}
