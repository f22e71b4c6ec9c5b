"""Two `celery beat` processes on celery-redbeat: one holds the lock, entries fire once."""

from __future__ import annotations

import os
import sys
import time

import redis

from kopter.devstack import spawn
from kopter.settings import get_settings
from tests.conftest import OUTPUT, ROOT, wait_for
from tests.support.drain import wait_drained


def test_two_beats_never_double_fire(workers):
    from tests.support.harness import FIRES, TICKS
    from tests.test_recovery import PERIOD, Cadence, _fires

    r = redis.Redis.from_url(get_settings().redis_url)
    r.delete(TICKS, FIRES)
    worker = workers.start("ticker", "audit", app="tests.support.harness")
    workers.wait_ready(worker)
    argv = [sys.executable, "-m", "celery", "-A", "tests.support.harness", "beat", "-l", "INFO"]
    started = time.time()
    beats = [spawn(f"beat{i}", argv, os.environ, OUTPUT / "logs", cwd=ROOT) for i in (1, 2)]
    workers.children.extend(beats)
    wait_for(lambda: len(_fires(r, started)) >= 8, 60, "eight ticks")
    # Read before stopping: the first beat to stop hands the lock to the other.
    holders = [b.name for b in beats if "Acquired lock" in b.tail(200)]
    for beat in beats:
        beat.stop()
    wait_drained("audit")  # every tick sent has run
    cadence = Cadence(sorted(f["sent"] for f in _fires(r, started).values()))
    # One beat fires an entry at most once a PERIOD, timed by when it sent each tick (a send may
    # come up to a period after its claim): over the span of the sends, at most one more than
    # the periods in it and one late. Two beats firing apart would send about twice as many,
    # some a moment apart.
    span = cadence.sent[-1] - cadence.sent[0]
    assert len(cadence.sent) <= span / PERIOD + 2, cadence.gaps
    assert cadence.doubled == 0, cadence.gaps
    assert len(holders) == 1, holders
