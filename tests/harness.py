"""Tasks that exist only to exercise kopter's Celery-on-SQS settings in tests: redelivery after a
worker dies mid-task, and redrive of a task that keeps failing. They run on kopter's own app,
with its configuration; tests send them to the `audit` queue, where a worker started with
`-A tests.harness` runs them.
"""

from __future__ import annotations

import time

import redis

from kopter.settings import get_settings
from tasks import app

__all__ = ["app"]


def _redis() -> redis.Redis:
    return redis.Redis.from_url(get_settings().redis_url)


@app.task(name="tests.harness.slow", bind=True)
def slow(self, key: str, seconds: float) -> str:
    _redis().rpush(key, self.request.hostname)
    time.sleep(seconds)
    _redis().rpush(f"{key}:done", self.request.hostname)
    return str(self.request.hostname)


@app.task(name="tests.harness.always_fails")
def always_fails(key: str) -> None:
    _redis().incr(key)
    raise RuntimeError("this task always fails")


TICKS = "harness:ticks"

# Beat started on this app fires only this entry, every second, so a double fire shows at once.
app.conf.beat_schedule = {
    "tick": {"task": "tests.harness.tick", "schedule": 1.0, "options": {"queue": "audit"}}
}


@app.task(name="tests.harness.tick")
def tick() -> None:
    _redis().rpush(TICKS, time.time())


@app.task(name="tests.harness.touch", ignore_result=True)
def touch(path: str) -> None:
    """Leaves a file, and nothing in Redis: work that needs only SQS."""
    with open(path, "w") as f:
        f.write(str(time.time()))
