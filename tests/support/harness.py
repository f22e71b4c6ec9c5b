"""Tasks that exist only to exercise kopter's Celery-on-SQS settings in tests: redelivery after a
worker dies mid-task, and redrive of a task that keeps failing. They run on kopter's own app,
with its configuration; tests send them to the `audit` queue, where a worker started with
`-A tests.support.harness` runs them.
"""

from __future__ import annotations

import json
import os
import signal
import time
from datetime import datetime
from typing import Any

import redis

from kopter.settings import get_settings
from tasks import app
from tasks.beat import Scheduler

__all__ = ["app"]


def _redis() -> redis.Redis:
    return redis.Redis.from_url(get_settings().redis_url)


@app.task(name="tests.support.harness.slow", bind=True)
def slow(self, key: str, seconds: float) -> str:
    _redis().rpush(key, self.request.hostname)
    time.sleep(seconds)
    _redis().rpush(f"{key}:done", self.request.hostname)
    return str(self.request.hostname)


@app.task(name="tests.support.harness.stamped", bind=True)
def stamped(self, key: str, seconds: float, release: str = "") -> None:
    """Runs for ``seconds``, or until the Redis key ``release`` exists if one is named, and
    records in the list ``key`` when it started and when it ended, on which worker (by name)."""
    host = str(self.request.hostname).split("@")[0]

    def stamp(event: str) -> None:
        fields = {"id": self.request.id, "host": host, "event": event, "at": time.time()}
        _redis().rpush(key, json.dumps(fields))

    stamp("start")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not (release and _redis().exists(release)):
        time.sleep(min(0.1, seconds))
    stamp("end")


@app.task(name="tests.support.harness.always_fails")
def always_fails(key: str) -> None:
    _redis().incr(key)
    raise RuntimeError("this task always fails")


TICKS = "harness:ticks"
# Each tick as a JSON object: its task id, when beat sent it and when the worker ran it.
FIRES = "harness:fires"
TICK_EXPIRES = 60.0

# Beat started on this app fires only this entry, every second, so a double fire shows at once.
# A relative ``expires`` becomes an absolute time when beat sends the message, so a tick knows
# when beat sent it, however late the worker runs it.
app.conf.beat_schedule = {
    "tick": {
        "task": "tests.support.harness.tick",
        "schedule": 1.0,
        "options": {"queue": "audit", "expires": TICK_EXPIRES},
    }
}


@app.task(name="tests.support.harness.tick", bind=True)
def tick(self) -> None:
    ran = time.time()
    sent = datetime.fromisoformat(self.request.expires).timestamp() - TICK_EXPIRES
    fire = {"id": self.request.id, "sent": sent, "ran": ran}
    _redis().pipeline().rpush(TICKS, ran).rpush(FIRES, json.dumps(fire)).execute()


@app.task(name="tests.support.harness.touch", ignore_result=True)
def touch(path: str) -> None:
    """Leaves a file, and nothing in Redis: work that needs only SQS."""
    with open(path, "w") as f:
        f.write(str(time.time()))


# A beat started with `-S tests.support.harness:FreezingScheduler` stops its own process (SIGSTOP)
# once the file named here appears, mid-tick: after it found an entry due, before it claims it, the
# worst moment for a holder to freeze. The test sends SIGCONT.
FREEZE_FILE = "HARNESS_FREEZE_FILE"


class FreezingScheduler(Scheduler):
    def _claim(self, entry: Any) -> Any:
        path = os.environ.get(FREEZE_FILE)
        if path and os.path.exists(path):
            os.remove(path)
            os.kill(os.getpid(), signal.SIGSTOP)
        return super()._claim(entry)
