"""A worker stopped the way ECS stops a task: SIGTERM to its main process, then SIGKILL to all of
it once the stop timeout (``KOPTER_WORKER_STOP_TIMEOUT``) is up, if anything is left.

The audit queue gets production's visibility timeout for the test, so a message the worker left
hidden would not come back within it: only what the worker gives back runs again. The worker
holds four messages at SIGTERM: a task longer than the stop timeout, a short one, and two it has
not started (a prefetch of two per process, so that it holds some). Another holds one already
sent to its pool process, which runs it: not given back, it runs once.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

import celeryconfig
from kopter import aws, queues
from kopter.settings import get_settings, load
from tasks import shutdown
from tests.conftest import ROOT, wait_for
from tests.support import chaos, drain
from tests.support.reliability import record

pytestmark = pytest.mark.long

STOP_TIMEOUT = 20
VISIBILITY_TIMEOUT = 1800  # the default
ENV = {
    "KOPTER_WORKER_STOP_TIMEOUT": str(STOP_TIMEOUT),
    "KOPTER_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT),
}
GIVE_UP_AFTER = load({**os.environ, **ENV}).worker_give_up_after
LONG_POLL = float(celeryconfig.broker_transport_options["wait_time_seconds"])
LONG = 2 * STOP_TIMEOUT  # started before SIGTERM, it cannot end before SIGKILL
SHORT = 6  # running at SIGTERM, it ends well before the worker would give up on it
# Time limits travel with the message: the sender's, this test's own, not the suite's.
LIMITS: dict[str, Any] = {"time_limit": 3 * LONG, "soft_time_limit": 3 * LONG - 5}


@pytest.fixture
def r() -> redis.Redis:
    return redis.Redis.from_url(get_settings().redis_url)


@pytest.fixture
def audit_queue() -> Iterator[tuple[Any, str]]:
    """The audit queue with production's visibility timeout, the suite's again afterwards.

    First the long poll of a worker an earlier test killed runs out: moto, as SQS, answers a
    receive whose caller is gone, and the message it hands that dead connection stays hidden
    for that worker's visibility timeout, received once more than this test sees (its receipt
    handle then no longer the message's, the long task never came back). A worker stopped
    with SIGTERM lets its last poll finish (the last test here); one killed cannot."""
    time.sleep(LONG_POLL + 2)
    sqs = aws.client("sqs", get_settings())
    url = sqs.get_queue_url(QueueName=queues.sqs_name(get_settings(), "audit"))["QueueUrl"]
    sqs.set_queue_attributes(
        QueueUrl=url, Attributes={"VisibilityTimeout": str(VISIBILITY_TIMEOUT)}
    )
    yield sqs, url
    if any(chaos.depths(["audit"]).values()):
        chaos.purge("audit")  # a failed run's messages, hidden for half an hour
    sqs.set_queue_attributes(
        QueueUrl=url, Attributes={"VisibilityTimeout": str(get_settings().visibility_timeout)}
    )


def _depths(sqs: Any, url: str) -> tuple[int, int]:
    """(visible, in flight)"""
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    visible, in_flight = (int(attributes[name]) for name in names)
    return visible, in_flight


def _ran(r: redis.Redis, key: str) -> tuple[list[str], list[str]]:
    """The workers (by name) that started and that finished `slow` on ``key``, in order."""

    def names(k: str) -> list[str]:
        return [h.decode().split("@")[0] for h in r.lrange(k, 0, -1)]

    return names(key), names(f"{key}:done")


@pytest.mark.timeout(300)
def test_a_worker_stopped_like_ecs_finishes_what_it_can_and_gives_back_the_rest(
    workers, audit_queue, r
):
    from tests.support.harness import slow

    sqs, url = audit_queue
    key = f"stop:{secrets.token_hex(4)}"
    parked_before = chaos.depths(["audit"], dlq=True)
    stopped = workers.start(
        "stopped",
        "audit",
        app="tests.support.harness",
        env=ENV,
        options=("--prefetch-multiplier", "2"),
    )
    workers.wait_ready(stopped)
    long = slow.apply_async((f"{key}:long", LONG), queue="audit", **LIMITS)
    wait_for(lambda: r.llen(f"{key}:long"), 30, "the long task to start")
    short = slow.apply_async((f"{key}:short", SHORT), queue="audit", **LIMITS)
    wait_for(lambda: r.llen(f"{key}:short"), 30, "the short task to start")
    unstarted = [f"{key}:unstarted-{n}" for n in range(2)]
    later = [slow.apply_async((k, 1), queue="audit", **LIMITS) for k in unstarted]
    wait_for(lambda: _depths(sqs, url) == (0, 4), 30, "the worker to hold all four messages")

    terminated = time.monotonic()
    os.kill(stopped.process.pid, signal.SIGTERM)  # ECS signals the container's first process

    # What it had not started is visible again at once, while it still runs the long task.
    wait_for(lambda: _depths(sqs, url) == (2, 2), GIVE_UP_AFTER, "the unstarted messages back")
    given_back = time.monotonic() - terminated
    assert stopped.alive and _ran(r, f"{key}:long") == (["stopped"], [])

    replacement = workers.start("replacement", "audit", app="tests.support.harness", env=ENV)
    while stopped.alive and time.monotonic() < terminated + STOP_TIMEOUT:
        time.sleep(0.2)
    exited = time.monotonic() - terminated
    killed = stopped.alive
    if killed:
        stopped.kill()  # SIGKILL to every process left, as ECS does at the stop timeout
    assert not killed, f"still running {STOP_TIMEOUT} s after SIGTERM:\n{stopped.tail(40)}"
    assert stopped.process.returncode == 0, stopped.tail(40)

    # The long task's message is back long before the visibility timeout: another worker runs it.
    deadline = STOP_TIMEOUT + 60
    wait_for(
        lambda: _ran(r, f"{key}:long")[0] == ["stopped", "replacement"],
        terminated + deadline - time.monotonic(),
        f"the replacement to start the long task within {deadline} s of SIGTERM",
    )
    rerun = time.monotonic() - terminated
    assert long.get(timeout=LONG + 30).startswith("replacement@")
    assert short.get(timeout=10).startswith("stopped@")
    for result in later:
        assert result.get(timeout=30).startswith("replacement@")
    drain.wait_drained("audit", timeout=30)

    # Each effect once: the long task finished by the replacement only, the short one by the
    # stopped worker only, the unstarted ones run once, by the replacement; nothing parked.
    assert _ran(r, f"{key}:long") == (["stopped", "replacement"], ["replacement"])
    assert _ran(r, f"{key}:short") == (["stopped"], ["stopped"])
    for k in unstarted:
        assert _ran(r, k) == (["replacement"], ["replacement"])
    assert chaos.depths(["audit"], dlq=True) == parked_before
    assert replacement.alive
    record(
        "Worker stopped as ECS stops it: SIGTERM, SIGKILL after the stop timeout if still there",
        f"1 worker x 2 processes holding a {LONG} s task, a {SHORT} s task and 2 unstarted "
        f"messages; stop timeout {STOP_TIMEOUT} s, visibility timeout {VISIBILITY_TIMEOUT} s",
        lost=0,
        duplicated=0,
        unstarted_visible_again_after=f"{given_back:.1f} s",
        exited_by_itself_after=f"{exited:.1f} s (gives up on running tasks at {GIVE_UP_AFTER} s)",
        long_task_running_again_after=f"{rerun:.1f} s (bound {deadline} s)",
    )


@pytest.mark.timeout(180)
def test_a_task_sent_to_a_pool_process_runs_there_once_and_is_not_given_back(
    workers, audit_queue, r
):
    """A stopping worker gives back what no pool process was sent. A task written to a process
    that has not yet said it started it runs there all the same (nothing calls a job back): given
    back too, another worker would run it a second time. The process is frozen (SIGSTOP) to make
    that moment, which a loaded machine makes by itself, last until the worker has decided."""
    from tasks import app
    from tests.support.harness import slow

    sqs, url = audit_queue
    key = f"sent:{secrets.token_hex(4)}"
    worker = workers.start(
        "sent", "audit", app="tests.support.harness", env=ENV, options=("--concurrency", "1")
    )
    workers.wait_ready(worker)
    node = f"sent@{socket.gethostname()}"
    inspect = app.control.inspect(destination=[node], timeout=5)

    def pool() -> dict[str, Any]:
        return (inspect.stats() or {}).get(node, {}).get("pool", {})

    [process] = wait_for(lambda: pool().get("processes"), 30, "the worker's pool process")
    os.kill(process, signal.SIGSTOP)
    result = slow.apply_async((key, 1), queue="audit", **LIMITS)
    wait_for(lambda: pool()["writes"]["total"] == 1, 30, "the task written to the pool process")

    os.kill(worker.process.pid, signal.SIGTERM)
    # As its consumer closes, the worker says what it gives back and what it runs; only then
    # does the process go on.
    decided = ("not started", "not given back")
    wait_for(lambda: any(d in worker.tail(200) for d in decided), 30, "the worker's decision")
    os.kill(process, signal.SIGCONT)
    try:
        worker.process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running {STOP_TIMEOUT} s after SIGTERM:\n{worker.tail(40)}")
    assert worker.process.returncode == 0, worker.tail(40)

    assert "Restoring" not in worker.tail(200), worker.tail(40)  # nothing given back
    assert result.get(timeout=10).startswith("sent@")
    assert _ran(r, key) == (["sent"], ["sent"])
    # Its message was deleted as the task ended: nothing comes back to run it again.
    assert _depths(sqs, url) == (0, 0)


@pytest.mark.timeout(300)
def test_what_the_last_long_poll_brings_is_given_back(workers, audit_queue, r):
    """An idle worker always has a long poll in flight. SQS (moto as well) answers it when a
    message arrives within its wait, whether or not anyone still reads the answer: a stopping
    worker that abandoned it would leave that message hidden for the whole visibility timeout
    (production's here). It lets the poll finish and gives back what it brings, so the message
    runs on the next worker within seconds."""
    from tests.support.harness import slow

    sqs, url = audit_queue
    finishing = "SQS request(s) in flight finish"
    # Between two polls (polling_interval: 0.3 s in 5.3) nothing is in flight, and a poll about
    # to end may end before the message arrives: then the stop is tried again.
    for attempt in range(3):
        stopped = workers.start(f"polling-{attempt}", "audit", app="tests.support.harness", env=ENV)
        workers.wait_ready(stopped)
        time.sleep(1)  # its first long poll is out
        terminated = time.monotonic()
        os.kill(stopped.process.pid, signal.SIGTERM)
        wait_for(
            lambda: finishing in stopped.tail(50) or not stopped.alive,  # noqa: B023
            20,
            "the worker to close its consumer",
            0.05,
        )
        key = f"polled:{secrets.token_hex(4)}"
        result = slow.apply_async((key, 0), queue="audit", **LIMITS)
        try:
            stopped.process.wait(timeout=LONG_POLL + 10)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running {LONG_POLL + 10:.0f} s after SIGTERM:\n{stopped.tail(40)}")
        exited = time.monotonic() - terminated
        assert stopped.process.returncode == 0, stopped.tail(40)
        assert exited < LONG_POLL + shutdown.RECEIVE_GRACE + 2, exited

        name = f"after-polling-{attempt}"
        replacement = workers.start(name, "audit", app="tests.support.harness", env=ENV)
        assert result.get(timeout=60).startswith(f"{name}@"), stopped.tail(40)
        assert _ran(r, key) == ([name], [name])
        wait_for(lambda: _depths(sqs, url) == (0, 0), 10, "its message deleted")
        os.kill(replacement.process.pid, signal.SIGTERM)
        replacement.process.wait(timeout=LONG_POLL + 10)
        if "releasing 1 received message(s)" in stopped.tail(50):
            break
    else:
        pytest.fail("in three stops, no message arrived in the stopping worker's last long poll")


def test_the_systemd_unit_stops_a_worker_as_the_setting_says():
    """kopter-worker@.service's TimeoutStopSec is the worker's KOPTER_WORKER_STOP_TIMEOUT, and
    with kopter's default time limit every task ends before the worker would give up on it."""
    unit = (ROOT / "deploy" / "kopter-worker@.service").read_text().splitlines()
    [timeout] = [line.split("=", 1)[1] for line in unit if line.startswith("TimeoutStopSec=")]
    assert f"Environment=KOPTER_WORKER_STOP_TIMEOUT={timeout}" in unit
    settings = load({"KOPTER_WORKER_STOP_TIMEOUT": timeout})
    assert settings.worker_give_up_after > settings.task_time_limit
