"""A deploy's rolling restart, with real processes: three `celery worker`s are restarted one by
one with SIGTERM (Celery's warm shutdown, what kopter-worker@.service's stop sends) during an
ingest backlog and a spread describer run. Each stops after its running tasks finished (no task
lost to a time limit or a lost worker), gives back what it held, and is replaced; every
CloudTrail record is in the audit log once, every instance change once, nothing is parked. The
time each restart takes (SIGTERM to exit, start to ready) is recorded.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from tests.conftest import Kopter, wait_for
from tests.support import chaos
from tests.support.reliability import record

pytestmark = pytest.mark.long

WORK = ("ingest", "describer")
QUEUES = (*WORK, "cloudtrail-notifications")
SPREAD = 30
ENV = {"KOPTER_TASK_TIME_LIMIT": "30", "KOPTER_DESCRIBE_SPREAD_SECONDS": str(SPREAD)}
GOAL = 10.0  # seconds a restart may take, SIGTERM to the replacement ready (issue #18)


@pytest.fixture(autouse=True)
def production_redeliveries() -> Iterator[None]:
    """A restart gives messages back, so they are received again: production's allowance."""
    chaos.set_max_receive_count(QUEUES, 5)
    yield
    chaos.set_max_receive_count(QUEUES, 2)
    chaos.purge("aggregator")  # the describer run's chord: no part of this test


def _settled() -> bool:
    return not any(chaos.depths(QUEUES).values())


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
    # limits travel with the message: the workers', not this process's 4 s.)
    describe_all_accounts.apply_async(
        kwargs={"tenant_id": estate.tenant}, queue="describer", time_limit=30, soft_time_limit=27
    )
    expected_events = {(i, "launched") for i in estate.instances}
    wait_for(lambda: len(chaos.ingested(estate.files)) >= 10, 120, "the backlog to move", 1)

    restarts: list[tuple[float, float, int]] = []
    for n, worker in enumerate(list(live)):
        backlog = len(estate.files) - len(chaos.ingested(estate.files))
        assert backlog > 0, "the backlog ran out before every worker was restarted"
        stopping = time.monotonic()
        os.kill(worker.process.pid, signal.SIGTERM)  # the main process: Celery's warm shutdown
        worker.process.wait(timeout=60)
        stopped = time.monotonic() - stopping
        assert worker.process.returncode == 0, worker.tail(40)
        log = worker.tail(5000)
        for death in ("WorkerLostError", "Hard time limit", "TimeLimitExceeded"):
            assert death not in log, log
        given_back = sum(
            int(line.split("Restoring ")[1].split()[0])
            for line in log.splitlines()
            if "Restoring " in line and "unacknowledged message" in line
        )
        starting = time.monotonic()
        replacement = workers.start(f"rolling-{n}-new", ",".join(WORK), env=ENV)
        workers.wait_ready(replacement, timeout=120)
        live[live.index(worker)] = replacement
        restarts.append((stopped, time.monotonic() - starting, given_back))

    def done() -> bool:
        files, described = chaos.ingested(estate.files), set(chaos.events(estate.tenant))
        return len(files) == len(estate.files) and described >= expected_events

    wait_for(done, 300, "every file ingested and every instance described", 3)
    elapsed = time.monotonic() - started
    wait_for(_settled, 120, "the queues to drain", 2)

    lost_records = chaos.missing_records(estate.tenant, estate.records)
    stored = chaos.audit_log_items() - items_before
    found = Counter(chaos.events(estate.tenant))
    doubled_events = sum(n - 1 for n in found.values()) + len(set(found) - expected_events)
    parked = chaos.depths(QUEUES, dlq=True)
    assert lost_records == [] and stored == len(estate.records), (len(lost_records), stored)
    assert set(found) == expected_events and not doubled_events, found
    assert not any(parked.values()), parked
    worst = max(stop + start for stop, start, _ in restarts)
    record(
        "Workers restarted one by one with SIGTERM (a deploy's rolling restart)",
        f"{len(estate.files)} CloudTrail files ({len(estate.records):,} records) and a describer "
        f"run over {len(estate.accounts)} accounts spread over {SPREAD} s, 3 workers x 2 "
        "processes",
        lost=len(lost_records) + len(expected_events - set(found)),
        duplicated=stored - len(estate.records) + doubled_events,
        restarts=len(restarts),
        seconds_to_stop=", ".join(f"{s:.1f}" for s, _, _ in restarts),
        seconds_to_ready=", ".join(f"{r:.1f}" for _, r, _ in restarts),
        messages_given_back=", ".join(str(g) for _, _, g in restarts),
        longest_restart=f"{worst:.1f} s (goal {GOAL:.0f} s)",
        seconds=round(elapsed),
    )
