"""The cost graph on a real `aggregator` worker: a scripted day of a fleet, priced to the cent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from kopter.costs.usage import Change as Seen
from kopter.costs.usage import Known, usage
from kopter.ec2 import describer, events
from kopter.ec2.events import CLOUDTRAIL, Change
from kopter.ec2.instances import InstanceState
from kopter.settings import get_settings
from kopter.tables import PriceGraphPoint
from tasks.aggregator import aggregate_tenant_hour
from tests.support.drain import wait_drained
from tests.support.offers import SMALL_FLEET_PRICES, write_offer

REGION = "sa-east-1"
DAY = datetime(2026, 11, 20, tzinfo=UTC)
ALICE = "arn:aws:iam::123456789012:user/alice"
BOB = "arn:aws:iam::123456789012:user/bob"
M5, T3, C5_WINDOWS = Decimal("0.153"), Decimal("0.0134"), Decimal("0.354")


def _at(hours: float, day: datetime = DAY) -> datetime:
    return day + timedelta(hours=hours)


def _state(instance_id, itype, state, launched, platform="Linux/UNIX", stopped=None, spot=False):
    return InstanceState(
        instance_id=instance_id,
        region=REGION,
        state=state,
        instance_type=itype,
        platform=platform,
        tenancy="default",
        lifecycle="spot" if spot else "on-demand",
        availability_zone=f"{REGION}a",
        launch_time=launched,
        transition_time=stopped,
    )


def _hour(tenant: str, hour: datetime) -> dict:
    result = aggregate_tenant_hour.apply_async(
        (tenant, hour.isoformat()), time_limit=60, soft_time_limit=55
    )
    return result.get(timeout=90)


def _cost(tenant: str, account: str, hour: datetime) -> Decimal:
    return PriceGraphPoint.get(tenant, PriceGraphPoint.sort_key(hour, account)).cost_usd


def test_a_scripted_day_costs_what_a_hand_computes(kopter, workers, tmp_path):
    c = kopter.connect("--regions", REGION)
    prices = write_offer(tmp_path / "sa.json", REGION, "20261120000000", SMALL_FLEET_PRICES)
    kopter("pricing", "import", str(prices), "--region", REGION)

    # What the describer saw at the start of the day and at its end.
    settings = get_settings()
    a = _state("i-0aaaaaaaaaaaaaaa1", "m5.large", "running", _at(-14))
    c5 = _state("i-0ccccccccccccccc3", "c5.xlarge", "running", _at(-20), platform="Windows")
    spot = _state("i-0dddddddddddddd04", "m5.large", "running", _at(-3), spot=True)
    describer.record(c.tenant, c.account, REGION, [a, c5, spot], DAY, settings)
    b_end = _state("i-0bbbbbbbbbbbbbbb2", "t3.micro", "stopped", _at(10.25), stopped=_at(14.7583))
    c5_end = _state(
        "i-0ccccccccccccccc3", "c5.xlarge", "stopped", _at(-20), platform="Windows", stopped=_at(8)
    )
    describer.record(c.tenant, c.account, REGION, [a, b_end, c5_end, spot], _at(24), settings)
    # What CloudTrail saw: alice ran b from 10:15:00 to 14:45:30; an instance of a type with no
    # price ran from 12:00 to 13:00 between two describer runs.
    for change in (
        Change(b_end.instance_id, REGION, "launched", _at(10.25), {"instance_type": "t3.micro"}),
        Change(b_end.instance_id, REGION, "stopped", _at(14) + timedelta(minutes=45, seconds=30)),
        Change("i-0eeeeeeeeeeeeee05", REGION, "launched", _at(12), {"instance_type": "x9.huge"}),
        Change("i-0eeeeeeeeeeeeee05", REGION, "terminated", _at(13)),
    ):
        events.record(c.tenant, c.account, change, CLOUDTRAIL, ALICE)

    env = {"KOPTER_TASK_TIME_LIMIT": "60", "KOPTER_COST_JUMP_MIN_USD": "0.1"}
    worker = workers.start("aggregator", "aggregator,notifications", env=env)
    workers.wait_ready(worker)
    for hour in range(24):
        _hour(c.tenant, _at(hour))

    b_hour_10 = T3 * 2700 / 3600  # 10:15:00 to 11:00
    b_hour_14 = T3 * 2730 / 3600  # 14:00 to 14:45:30
    expected = [M5 + C5_WINDOWS] * 8 + [M5] * 2 + [M5 + b_hour_10] + [M5 + T3] * 3
    expected += [M5 + b_hour_14] + [M5] * 9
    costs = [_cost(c.tenant, c.account, _at(h)) for h in range(24)]
    assert costs == expected
    total = sum(expected, Decimal(0))
    assert total.quantize(Decimal("0.01")) == Decimal("6.56")

    graph = kopter.rows(
        "graph", "--tenant", c.tenant, "--since", "2026-11-20", "--until", "2026-11-20T23:00:00Z"
    )
    assert len(graph) == 24
    assert sum(Decimal(r["cost_usd"]) for r in graph) == Decimal("6.56")
    by_type = kopter.rows(
        "graph",
        "--tenant",
        c.tenant,
        "--since",
        "2026-11-20T10:00:00Z",
        "--until",
        "2026-11-20T10:00:00Z",
        "--by",
        "instance-type",
    )
    assert {r["instance_type"]: r["cost_usd"] for r in by_type} == {
        "m5.large": "0.15",
        "t3.micro": "0.01",
    }

    # A missing price is reported, never a silent zero: the spot instance every hour, the
    # unpriced type in its hour, and one notification for the unpriced type.
    noon = PriceGraphPoint.get(c.tenant, PriceGraphPoint.sort_key(_at(12), c.account))
    missing = {(m["instance_type"], m["reason"]) for m in noon.missing_prices}
    assert missing == {("m5.large", "spot"), ("x9.huge", "no price")}
    assert noon.running_instances == 4

    # Recomputing an hour changes nothing and raises nothing new. Notices are stored by the
    # notifications queue's task after the aggregator's returned: counted once it drained.
    _hour(c.tenant, _at(12))
    assert _cost(c.tenant, c.account, _at(12)) == M5 + T3
    wait_drained("notifications")
    notices = kopter.rows("notifications", "--tenant", c.tenant)
    assert [n["kind"] for n in notices] == ["price-missing"]
    assert "x9.huge" in notices[0]["title"]

    # The next day at 10:00 bob launches a Windows c5.xlarge: the hour costs 3x the usual, and
    # the notification names the instance and bob.
    f = _state("i-0fffffffffffffff6", "c5.xlarge", "running", _at(34), platform="Windows")
    describer.record(c.tenant, c.account, REGION, [a, b_end, c5_end, spot, f], _at(35), settings)
    events.record(
        c.tenant,
        c.account,
        Change(f.instance_id, REGION, "launched", _at(34), {"instance_type": "c5.xlarge"}),
        CLOUDTRAIL,
        BOB,
    )
    summary = _hour(c.tenant, _at(34))
    assert summary["cost_usd"] == str((M5 + C5_WINDOWS).quantize(Decimal("0.01")))
    assert "cost-jump" in summary["notices"]
    wait_drained("notifications")
    notices = kopter.rows("notifications", "--tenant", c.tenant)
    [jump] = [n for n in notices if n["kind"] == "cost-jump"]
    assert f.instance_id in jump["body"] and BOB in jump["body"]


def test_usage_rules():
    hour = DAY
    linux = Known("running", "m5.large", _at(-5))
    assert [u.seconds for u in usage("i-1", linux, [], hour, "Linux")] == [3600]
    # Started 30 s before the end of the hour: Linux bills the 60-second minimum.
    late = Known("running", "m5.large", hour + timedelta(seconds=3570))
    [u] = usage("i-1", late, [], hour, "Linux")
    assert (u.seconds, u.billed_seconds, u.starts) == (30, 60, 1)
    # SUSE is billed by the hour started.
    [u] = usage("i-1", late, [], hour, "SUSE")
    assert (u.seconds, u.billed_seconds) == (30, 3600)
    # Stopped, resized and started again within the hour: two types, one interval each.
    changes = [
        Seen(_at(0.25), "stopped"),
        Seen(_at(0.5), "resized", {"from": "t3.micro", "to": "m5.large"}),
        Seen(_at(0.75), "started"),
    ]
    used = usage("i-1", Known("running", "m5.large", _at(0.75)), changes, hour, "Linux")
    assert {(u.instance_type, u.seconds) for u in used} == {("t3.micro", 900), ("m5.large", 900)}
    # A stopped row whose last event is a start: the row's stop time ends the interval.
    stopped = Known("stopped", "m5.large", _at(0.1), stopped_at=_at(0.6))
    [u] = usage("i-1", stopped, [Seen(_at(0.1), "started")], hour, "Linux")
    assert u.seconds == 1800
