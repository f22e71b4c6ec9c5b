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
    from tests.support.harness import TICKS

    r = redis.Redis.from_url(get_settings().redis_url)
    r.delete(TICKS)
    worker = workers.start("ticker", "audit", app="tests.support.harness")
    workers.wait_ready(worker)
    argv = [sys.executable, "-m", "celery", "-A", "tests.support.harness", "beat", "-l", "INFO"]
    beats = [spawn(f"beat{i}", argv, os.environ, OUTPUT / "logs", cwd=ROOT) for i in (1, 2)]
    workers.children.extend(beats)
    started = time.monotonic()
    wait_for(lambda: r.llen(TICKS) >= 8, 60, "eight ticks")
    # Read before stopping: the first beat to stop hands the lock to the other.
    holders = [b.name for b in beats if "Acquired lock" in b.tail(200)]
    for beat in beats:
        beat.stop()
    elapsed = time.monotonic() - started
    wait_drained("audit")  # every tick sent has run
    ticks = [float(t) for t in r.lrange(TICKS, 0, -1)]
    # One beat fires once a second; two unlocked beats would fire about twice as often.
    assert len(ticks) <= elapsed + 2, (len(ticks), elapsed)
    assert len(holders) == 1, holders
