"""A deploy's rolling restart, with real processes: three `celery worker`s are restarted one by
one with SIGTERM (Celery's warm shutdown, what kopter-worker@.service's stop sends) during an
ingest backlog and a spread describer run, on queues with production's visibility timeout (30
minutes: a message a stopped worker kept would come back long after this test). Each worker
stops after its running tasks finished (no task lost to a time limit or a lost worker), gives
back every message it had received and not run, which another worker then runs, leaves the
describer's delayed tasks waiting in SQS, and is replaced; every CloudTrail record is in the
audit log once, every instance change once, every task ran once, nothing is parked. The time
each restart takes (SIGTERM to exit, start to ready) is recorded.
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from kopter.devstack import Child
from tests.conftest import SETTINGS, Kopter, wait_for
from tests.support import chaos, drain
from tests.support.reliability import record

pytestmark = pytest.mark.long

WORK = ("ingest", "describer")
QUEUES = (*WORK, "cloudtrail-notifications")
VISIBILITY = 1800  # production's KOPTER_VISIBILITY_TIMEOUT
TIME_LIMIT = 30
# The describer run's tasks are spread over this long (SQS delays them up to 79 s for these
# accounts): some still wait in SQS when the last worker is stopped, even on a loaded machine
# where each restart took 21 s.
SPREAD = 90
# Production takes one message per pool process, and a worker stopped then mostly holds only
# what it runs: four make each worker hold messages it has not started, to give back.
PREFETCH = 4
ENV = {
    "KOPTER_TASK_TIME_LIMIT": str(TIME_LIMIT),
    "KOPTER_DESCRIBE_SPREAD_SECONDS": str(SPREAD),
    "KOPTER_VISIBILITY_TIMEOUT": str(VISIBILITY),
    "CELERY_WORKER_PREFETCH_MULTIPLIER": str(PREFETCH),  # `celery worker --prefetch-multiplier`
}
GOAL = 10.0  # seconds a restart may take, SIGTERM to the replacement ready (issue #18)

# Celery's lines of a task message: received by the worker, run to success by a pool process.
TASK_LINE = re.compile(r"Task ([\w.]+)\[([0-9a-f-]{36})\] (received|succeeded in)")
# kombu's, when a worker's channel closes with messages it received and never acknowledged:
# each is made visible again (`Channel._restore`), after the 5 s receive wait.
RESTORED = re.compile(r"Restoring (\d+) unacknowledged message")
# kombu's, for messages a receive brought after the consumer was cancelled: visible at once.
RELEASED = re.compile(r"releasing (\d+) received message")
# kopter's consumer's, for a task message that reached a worker before it was due.
EARLY = "back in SQS for"


@pytest.fixture(autouse=True)
def production_queues() -> Iterator[None]:
    """Production's visibility timeout and allowance for redeliveries (a restart gives messages
    back, so they are received again); the suite's again afterwards, with nothing left behind.
    What earlier modules of this process left on the queues goes first: the test counts every
    task its workers receive."""
    for queue in QUEUES:
        drain.emptied(queue)
    chaos.set_visibility_timeout(QUEUES, VISIBILITY)
    chaos.set_max_receive_count(QUEUES, 5)
    yield
    chaos.set_visibility_timeout(QUEUES, SETTINGS.visibility_timeout)
    chaos.set_max_receive_count(QUEUES, SETTINGS.max_receive_count)
    # The describer run's chord (no part of this test), and whatever a failed run left hidden
    # for half an hour.
    for queue in (*QUEUES, "aggregator"):
        chaos.purge(queue)


def _settled() -> bool:
    return not any(chaos.depths(QUEUES).values())


def _log(worker: Child) -> str:
    assert worker.log_path is not None
    return worker.log_path.read_text(errors="replace")


def _tasks(worker: Child) -> tuple[Counter[tuple[str, str]], Counter[tuple[str, str]]]:
    """The tasks (name, id) the worker received, and those it ran to success, from its log."""
    received: Counter[tuple[str, str]] = Counter()
    succeeded: Counter[tuple[str, str]] = Counter()
    for name, task_id, what in TASK_LINE.findall(_log(worker)):
        (received if what == "received" else succeeded)[name, task_id] += 1
    return received, succeeded


def _count(pattern: re.Pattern[str], log: str) -> int:
    return sum(int(n) for n in pattern.findall(log))


@pytest.mark.timeout(600)
def test_workers_restarted_one_by_one_lose_and_double_nothing(
    kopter: Kopter, workers, request: pytest.FixtureRequest
):
    from tasks.describer import describe_all_accounts

    estate = chaos.new_estate("rolling", 20, seed=41)
    estate.launch(per_account=4)
    estate.add_files(120, 250, datetime(2026, 3, 7, tzinfo=UTC), seed=41_000)
    request.addfinalizer(lambda: chaos.forget(estate.tenant, estate.records))
    live = [workers.start(f"rolling-{n}", ",".join(WORK), env=ENV) for n in range(3)]
    for worker in live:
        workers.wait_ready(worker, timeout=120)
    items_before = chaos.audit_log_items()
    started = time.monotonic()
    chaos.notify(chaos.s3_notification(b, k) for b, k in estate.files)
    # As beat sends it: the run spreads its (account, region) tasks over SPREAD seconds. (Time
    # limits travel with the message: the workers', not the suite's.)
    fan_out = describe_all_accounts.apply_async(
        kwargs={"tenant_id": estate.tenant},
        queue="describer",
        time_limit=TIME_LIMIT,
        soft_time_limit=TIME_LIMIT - 3,
    )
    # Its worker may run it after the ingest tasks it prefetched: PREFETCH rounds of its two
    # processes, each within the time limit.
    assert fan_out.get(timeout=PREFETCH * TIME_LIMIT)["enqueued"] == len(estate.accounts)
    expected_events = {(i, "launched") for i in estate.instances}
    wait_for(lambda: len(chaos.ingested(estate.files)) >= 10, 120, "the backlog to move", 1)

    stopped_workers: list[Child] = []
    restarts: list[dict[str, float]] = []
    for n, worker in enumerate(list(live)):
        backlog = len(estate.files) - len(chaos.ingested(estate.files))
        assert backlog > 0, "the backlog ran out before every worker was restarted"
        delayed_before = chaos.delayed("describer")
        # Its delayed tasks wait in SQS, where a stopping worker cannot touch them.
        assert delayed_before > 0, "no describer task waits in SQS (all due, or held by workers)"
        stopping = time.monotonic()
        os.kill(worker.process.pid, signal.SIGTERM)  # the main process: Celery's warm shutdown
        # Its running tasks finish first: each within the time limit.
        worker.process.wait(timeout=2 * TIME_LIMIT)
        stopped = time.monotonic() - stopping
        assert worker.process.returncode == 0, worker.tail(40)
        log = _log(worker)
        for death in ("WorkerLostError", "Hard time limit", "TimeLimitExceeded"):
            assert death not in log, log
        # What it received and did not run it gave back, no more and no less, and that was
        # something: SQS would hide a message it kept for the whole visibility timeout.
        received, succeeded = _tasks(worker)
        unrun = received - succeeded
        restored = _count(RESTORED, log)
        assert restored == sum(unrun.values()) > 0, (restored, unrun)
        stopped_workers.append(worker)
        starting = time.monotonic()
        replacement = workers.start(f"rolling-{n}-new", ",".join(WORK), env=ENV)
        workers.wait_ready(replacement, timeout=120)
        ready = time.monotonic() - starting
        live[live.index(worker)] = replacement
        # SQS hands a delayed task out once due, and nothing put one back: fewer, never more.
        delayed_after = chaos.delayed("describer")
        assert delayed_after <= delayed_before, (delayed_before, delayed_after)
        restarts.append(
            {
                "stop": stopped,
                "ready": ready,
                "given_back": restored + _count(RELEASED, log),
                "delayed_before": delayed_before,
                "delayed_after": delayed_after,
            }
        )

    def done() -> bool:
        files, described = chaos.ingested(estate.files), set(chaos.events(estate.tenant))
        return len(files) == len(estate.files) and described >= expected_events

    wait_for(done, SPREAD + 300, "every file ingested and every instance described", 3)
    elapsed = time.monotonic() - started
    wait_for(_settled, 120, "the queues to drain", 2)
    early = [
        line for w in [*stopped_workers, *live] for line in _log(w).splitlines() if EARLY in line
    ]
    assert not early, early  # no delayed task reached a worker before its time

    # Every task ran once; a task was received once more for each worker that gave it back.
    received: Counter[tuple[str, str]] = Counter()
    succeeded: Counter[tuple[str, str]] = Counter()
    given_back: Counter[tuple[str, str]] = Counter()
    for worker in [*stopped_workers, *live]:
        got, ran = _tasks(worker)
        received, succeeded = received + got, succeeded + ran
        if worker in stopped_workers:
            given_back += got - ran
    assert set(succeeded) == set(received) and set(succeeded.values()) == {1}, received - succeeded
    assert received == Counter(set(received)) + given_back, received - given_back
    names = Counter(name for name, _ in received)
    assert names["tasks.describer.describe_account_region"] == len(estate.accounts), names
    assert names["tasks.ingest.ingest_object"] == len(estate.files), names

    lost_records = chaos.missing_records(estate.tenant, estate.records)
    stored = chaos.audit_log_items() - items_before
    found = Counter(chaos.events(estate.tenant))
    doubled_events = sum(n - 1 for n in found.values()) + len(set(found) - expected_events)
    parked = chaos.depths(QUEUES, dlq=True)
    assert lost_records == [] and stored == len(estate.records), (len(lost_records), stored)
    assert set(found) == expected_events and not doubled_events, found
    assert not any(parked.values()), parked
    worst = max(r["stop"] + r["ready"] for r in restarts)

    def each(key: str, form: str = "{:.0f}") -> str:
        return ", ".join(form.format(r[key]) for r in restarts)

    record(
        "Workers restarted one by one with SIGTERM (a deploy's rolling restart)",
        f"{len(estate.files)} CloudTrail files ({len(estate.records):,} records) and a describer "
        f"run over {len(estate.accounts)} accounts spread over {SPREAD} s, 3 workers x 2 "
        f"processes, prefetch multiplier {PREFETCH}, visibility timeout {VISIBILITY} s",
        lost=len(lost_records) + len(expected_events - set(found)),
        duplicated=stored - len(estate.records) + doubled_events,
        restarts=len(restarts),
        seconds_to_stop=each("stop", "{:.1f}"),
        seconds_to_ready=each("ready", "{:.1f}"),
        messages_given_back=each("given_back"),
        delayed_in_sqs_before_each_restart=each("delayed_before"),
        and_after=each("delayed_after"),
        longest_restart=f"{worst:.1f} s (goal {GOAL:.0f} s)",
        seconds=round(elapsed),
    )
