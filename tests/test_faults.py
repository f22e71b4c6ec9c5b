"""kopter under faults, with real processes: `celery worker`s SIGKILLed at random, and AWS
answering with throttling, errors, slowness and dropped connections. After each, every CloudTrail
record is in the audit log once, every Ec2Event once, and no DLQ holds anything. Each test
appends its counts to the reliability record (`python -m tests.support.reliability` prints the
README's table from it). Poison is tests/test_poison.py's; beat and Redis, tests/test_recovery.py's.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from kopter.devstack import Child
from tests.conftest import SETTINGS, Kopter, wait_for
from tests.support import chaos
from tests.support.faultproxy import FaultProxy
from tests.support.reliability import record

pytestmark = pytest.mark.long

# The describer's run ends by enqueueing the aggregator: not consumed here, and purged after.
WORK = ("ingest", "describer")
# `make soak` runs the SIGKILL test over more files.
CHAOS_FILES = int(os.environ.get("KOPTER_CHAOS_FILES", "100"))
# Every task of these runs is short; a loaded machine must not turn one into a timeout.
LONG_ENOUGH = {"KOPTER_TASK_TIME_LIMIT": "30"}
# How long the SIGKILL run may make no progress at all: a task whose worker was killed under it
# comes back after the visibility timeout, and may run to its time limit, while a killed worker
# is replaced (a minute, on two loaded cores). Twice that, and nothing is coming. The run's
# length is not bounded by a guess of the machine's speed, only its stalls: speed is `make
# bench`'s.
STALL_SECONDS = 2 * (int(LONG_ENOUGH["KOPTER_TASK_TIME_LIMIT"]) + SETTINGS.visibility_timeout + 60)


@pytest.fixture(scope="module", autouse=True)
def production_redeliveries() -> Iterator[None]:
    """Redeliveries are the point here: production's allowance, not the suite's DLQ-quick 2;
    and the aggregator runs the describer enqueued are no part of these tests."""
    chaos.set_max_receive_count([*WORK, "cloudtrail-notifications"], 5)
    yield
    chaos.set_max_receive_count([*WORK, "cloudtrail-notifications"], 2)
    chaos.purge("aggregator")


@pytest.fixture(scope="module")
def estate() -> Iterator[chaos.Estate]:
    """50 connected accounts, 4 instances each; CHAOS_FILES log files of 250 records over them."""
    estate = chaos.new_estate("chaos", 50, seed=9)
    estate.launch(per_account=4)
    estate.add_files(CHAOS_FILES, 250, datetime(2026, 3, 4, tzinfo=UTC), seed=9_000)
    yield estate
    chaos.forget(estate.tenant, estate.records)


def _settled(queues: tuple[str, ...]) -> bool:
    return not any(chaos.depths(queues).values())


# A backstop only: the run fails as soon as it stalls (STALL_SECONDS).
@pytest.mark.timeout(10 * CHAOS_FILES + 600)
def test_workers_sigkilled_at_random_lose_and_double_nothing(kopter: Kopter, workers, estate):
    live: list[Child] = []

    def start(n: int) -> Child:
        return workers.start(f"chaos-{n}", ",".join(WORK), env=LONG_ENOUGH)

    live.extend(start(n) for n in range(3))
    for worker in live:
        workers.wait_ready(worker)
    items_before = chaos.audit_log_items()
    started = time.monotonic()
    monkey = chaos.Monkey(workers, start, live, seed=17)
    monkey.start()
    chaos.notify(chaos.s3_notification(b, k) for b, k in estate.files)
    kopter("run", "describer", "--tenant", estate.tenant, env=LONG_ENOUGH)
    expected_events = {(i, "launched") for i in estate.instances}

    queues = (*WORK, "cloudtrail-notifications")
    redriven = 0
    progress, progressed = (0, 0, 0), time.monotonic()

    def done() -> bool:
        nonlocal redriven, progress, progressed
        files, described = chaos.ingested(estate.files), set(chaos.events(estate.tenant))
        now = (len(files), len(described & expected_events), redriven)
        if now != progress:
            progress, progressed = now, time.monotonic()
        assert time.monotonic() - progressed < STALL_SECONDS, f"no progress in {STALL_SECONDS}s"
        print(
            f"{time.monotonic() - started:5.0f}s: {len(files)}/{len(estate.files)} files, "
            f"{len(described & expected_events)}/{len(expected_events)} events, "
            f"{monkey.child_kills} pool children and {monkey.worker_kills} workers killed, "
            f"{redriven} redriven"
        )
        if len(files) == len(estate.files) and described >= expected_events:
            return True
        # A message whose workers were killed under it KOPTER_MAX_RECEIVE_COUNT times is parked,
        # not lost: once the queues are idle, an operator's redrive sends it back.
        if _settled(queues):
            for queue, parked in chaos.depths(queues, dlq=True).items():
                if parked:
                    kopter("dlq", "redrive", queue)
                    redriven += parked
        return False

    try:
        wait_for(
            done,
            10 * CHAOS_FILES + 300,
            "every file ingested and every instance described",
            interval=3,
        )
    finally:
        monkey.stop()
    elapsed = time.monotonic() - started
    # What is still in flight finishes (a duplicate of a finished task included) before counting.
    wait_for(lambda: _settled(queues), STALL_SECONDS, "the queues to drain", 2)
    print(f"{time.monotonic() - started:5.0f}s: queues drained")

    lost_records = chaos.missing_records(estate.tenant, estate.records)
    stored = chaos.audit_log_items() - items_before
    found = Counter(chaos.events(estate.tenant))
    lost_events = expected_events - set(found)
    doubled_events = sum(n - 1 for n in found.values()) + len(set(found) - expected_events)
    parked = chaos.depths(queues, dlq=True)
    assert lost_records == [] and stored == len(estate.records), (len(lost_records), stored)
    assert not lost_events and not doubled_events, (lost_events, found)
    assert not any(parked.values()), parked
    assert monkey.child_kills + monkey.worker_kills >= 5, "too few kills to prove anything"
    record(
        "Worker processes SIGKILLed at random every 2-5 s (4 in 5 a pool child, else the whole "
        "worker)",
        f"{len(estate.files)} CloudTrail files ({len(estate.records):,} records) and a describer "
        f"run over {len(estate.accounts)} accounts ({len(expected_events)} instances), "
        "3 workers x 2 processes",
        lost=len(lost_records) + len(lost_events),
        duplicated=stored - len(estate.records) + doubled_events,
        pool_children_killed=monkey.child_kills,
        workers_killed=monkey.worker_kills,
        workers_exited_and_replaced=monkey.exited,
        parked_after_5_receives_and_redriven=redriven,
        seconds=round(elapsed),
    )


@pytest.mark.timeout(400)
def test_aws_throttling_failing_and_dropping_calls_loses_and_doubles_nothing(
    kopter: Kopter, workers, request: pytest.FixtureRequest
):
    """Every AWS call of the workers and the CLI (SQS included) goes through a proxy that answers
    one in eight with a fault; botocore's retries absorb them, within their bound."""
    from kopter.aws import MAX_ATTEMPTS
    from tests.conftest import MOTO_PORT

    estate = chaos.new_estate("faulty", 10, seed=21)
    estate.launch(per_account=2)
    estate.add_files(30, 200, datetime(2026, 3, 5, tzinfo=UTC), seed=21_000)
    request.addfinalizer(lambda: chaos.forget(estate.tenant, estate.records))
    rates = {"throttle": 0.04, "error": 0.03, "slow": 0.02, "drop": 0.02, "lost": 0.015}
    with FaultProxy(MOTO_PORT, rates, seed=5) as proxy:
        env = {**LONG_ENOUGH, "KOPTER_AWS_ENDPOINT_URL": proxy.url}
        items_before = chaos.audit_log_items()
        started = time.monotonic()
        live = [workers.start(f"faulty-{n}", ",".join(WORK), env=env) for n in range(2)]
        for worker in live:
            workers.wait_ready(worker, timeout=120)
        chaos.notify(chaos.s3_notification(b, k) for b, k in estate.files)
        kopter("run", "describer", "--tenant", estate.tenant, env=env)
        expected_events = {(i, "launched") for i in estate.instances}
        wait_for(
            lambda: (
                len(chaos.ingested(estate.files)) == len(estate.files)
                and set(chaos.events(estate.tenant)) >= expected_events
            ),
            300,
            "every file ingested and every instance described, through the faults",
            interval=3,
        )
        wait_for(lambda: _settled((*WORK, "cloudtrail-notifications")), 120, "queues to drain", 2)
        elapsed = time.monotonic() - started
        proxy.enabled = False
        summary = proxy.summary()

    lost_records = chaos.missing_records(estate.tenant, estate.records)
    stored = chaos.audit_log_items() - items_before
    found = Counter(chaos.events(estate.tenant))
    doubled_events = sum(n - 1 for n in found.values()) + len(set(found) - expected_events)
    parked = chaos.depths((*WORK, "cloudtrail-notifications"), dlq=True)
    assert lost_records == [] and stored == len(estate.records), (len(lost_records), stored)
    assert set(found) == expected_events and not doubled_events, found
    assert not any(parked.values()), parked
    assert all(summary["faults"].get(f, 0) >= 3 for f in rates), summary
    # No call was tried more often than botocore's standard mode allows.
    assert summary["most_attempts_of_one_call"] <= MAX_ATTEMPTS, summary
    for worker in live:
        assert "Unrecoverable error" not in worker.tail(5000)
    faults = ", ".join(f"{n} {f}" for f, n in sorted(summary["faults"].items()))
    record(
        "AWS calls answered with throttling, 500s, slow answers, connections dropped before "
        "the request or after it was done (one call in eight)",
        f"{len(estate.files)} CloudTrail files ({len(estate.records):,} records) and a describer "
        f"run over {len(estate.accounts)} accounts, 2 workers x 2 processes",
        lost=len(lost_records) + len(expected_events - set(found)),
        duplicated=stored - len(estate.records) + doubled_events,
        aws_requests=summary["requests"],
        faults_injected=faults,
        most_attempts_of_one_call=summary["most_attempts_of_one_call"],
        seconds=round(elapsed),
    )
