"""Stopping a worker the orchestrator's way: SIGTERM, then SIGKILL after a stop timeout.

The orchestrator's stop timeout is ``KOPTER_WORKER_STOP_TIMEOUT`` (ECS's ``stopTimeout``,
systemd's ``TimeoutStopSec``).

SIGTERM is Celery's warm shutdown: the worker stops consuming and its running tasks go on to
their end. Two things kopter adds, because with SQS neither happens in time on its own:

- Messages the worker holds but has not started are given back at once (``give_back_unstarted``,
  from the consumer's close). Celery drops them there, trusting the broker to deliver them again,
  but kombu's SQS transport makes them visible only when its channel closes, after the running
  tasks ended: up to the whole stop later. Not started means no pool process was sent it: a
  process that was (and has not yet said it started it) runs it whatever the main process does,
  as Celery's pool cannot call a job back, so its message given back would run twice. Celery's
  close forgets such a job's result too, leaving its message to kombu's restore at exit and a
  second run elsewhere; ``keep_sent`` puts the job back, so its result acknowledges its message
  as any running task's does.
- The stop clock (``start_stop_clock``): at ``Settings.worker_give_up_after`` seconds after
  SIGTERM, a worker still running tasks turns its warm shutdown into Celery's cold one (SIGQUIT
  to itself). That terminates the pool processes running them, leaves their messages
  unacknowledged, and kombu gives those back as the channel closes (ChangeMessageVisibility with
  the receipt handle the worker holds, visible again after the transport's 5 s wait), so another
  worker runs them within seconds instead of after the visibility timeout. Then the worker exits
  by itself, before SIGKILL.
- The last receive (``finish_receives``): the long poll (``wait_time_seconds``) the consumer had
  in flight at SIGTERM is answered all the same, by SQS as by moto, when a message arrives in its
  wait: abandoned, that answer goes to a closed connection and the message stays hidden for the
  whole visibility timeout. The stopping worker cancels its consumer, so that kombu gives back
  what the receive brings (``Consumer for queue … is gone, releasing``), and lets the receive
  finish: a stop takes up to the long poll's wait longer, and loses no message to it.

Celery's own soft shutdown (``worker_soft_shutdown_timeout`` with ``REMAP_SIGTERM=SIGQUIT``)
does the second part, but sleeps out the whole timeout in the signal handler whenever a task
runs: the event loop stands still, a task that ended after a second is acknowledged only then,
and every stop takes the full timeout.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from typing import Any

from celery.worker import state

from kopter.settings import get_settings

log = logging.getLogger(__name__)

_stopping = threading.Event()


def start_stop_clock(how: str, **_: Any) -> None:
    """``worker_shutting_down`` (the worker's main process, in its signal handler): at the first
    warm shutdown, start the clock that gives up on the running tasks before SIGKILL comes."""
    if _stopping.is_set():
        return  # the orchestrator's SIGKILL counts from its first SIGTERM
    _stopping.set()
    if how == "Warm":
        after = get_settings().worker_give_up_after
        threading.Thread(target=_give_up, args=(after,), name="stop-clock", daemon=True).start()


def _give_up(after: int) -> None:
    time.sleep(after)
    log.warning(
        "still stopping %ds after SIGTERM with %d task(s) running: cold shutdown, their messages "
        "go back to SQS",
        after,
        len(state.active_requests),
    )
    os.kill(os.getpid(), signal.SIGQUIT)


def _job(request: Any) -> Any:
    """The pool's job of ``request``, once the worker handed it to the pool (Celery keeps only a
    weak reference)."""
    ref = request._apply_result
    return ref() if ref is not None else None


def _sent(job: Any) -> bool:
    """Whether a pool process has the job, or is being written it: a write once started is
    finished even by Celery's close, and the process then runs the job."""
    return job is not None and (job._accepted or job._write_to is not None)


def unstarted_requests() -> tuple[list[Any], list[Any]]:
    """What the worker holds and has not started: the requests no pool process was sent, and the
    pool jobs sent to a process that has not yet said it started them."""
    unsent: list[Any] = []
    sent: list[Any] = []
    for request in tuple(state.reserved_requests):
        if request in state.active_requests:
            continue
        job = _job(request)
        if _sent(job):
            sent.append(job)
        else:
            unsent.append(request)
    return unsent, sent


def keep_sent(jobs: list[Any]) -> None:
    """Put back in the pool the jobs of ``jobs`` (sent to a process, not yet started there) that
    Celery's close forgot, if the worker is stopping: the process runs each, and its result
    acknowledges its message, which is not given back."""
    if not _stopping.is_set() or not jobs:
        return
    for job in jobs:
        job._cache.setdefault(job._job, job)
    log.info("%d task(s) already sent to a pool process: run here, not given back", len(jobs))


def give_back_unstarted(requests: list[Any]) -> None:
    """Give back to SQS the messages of ``requests`` (held, never started) if the worker is
    stopping, through kombu's requeue: visible again after the transport's wait, and forgotten
    here so nothing of this worker touches them again."""
    if not _stopping.is_set():
        return
    given = 0
    for request in requests:
        if request in state.active_requests:
            continue
        try:
            request.reject(requeue=True)
            given += 1
        except Exception:
            log.exception("task %s: cannot give its message back to SQS", request.id)
    if given:
        # kombu's words for what it gives back at close, so one count of the log covers both.
        log.info("Restoring %d unacknowledged message(s) not started, to SQS at once", given)


# Beyond the long poll's wait, a slow answer is given up: a worker that does not exit is worse.
RECEIVE_GRACE = 3.0


def _in_flight(client: Any) -> int:
    """Requests kombu's curl client has started or queued and not yet answered (kombu 5.7's
    ``CurlClient`` keeps no public count; the last-poll test of tests/test_worker_stop.py fails
    if these names change)."""
    return len(client._curls) - len(client._free_list) + len(client._pending)


def finish_receives(hub: Any, task_consumer: Any, long_poll: float) -> None:
    """If the worker is stopping, let the SQS requests in flight on ``hub`` finish (a receive
    within its ``long_poll`` wait), driven here as the event loop has stopped. The task consumer
    is cancelled first, so that kombu gives back the messages a receive brings instead of
    delivering them."""
    if not _stopping.is_set() or hub is None:
        return
    client = getattr(hub, "_current_http_client", None)
    if client is None or client._closed or not _in_flight(client):
        return
    if task_consumer is not None:
        task_consumer.cancel()
    wait = long_poll + RECEIVE_GRACE
    log.info(
        "stopping: letting %d SQS request(s) in flight finish (at most %.0fs); the messages a "
        "receive brings go back to SQS",
        _in_flight(client),
        wait,
    )
    deadline = time.monotonic() + wait
    while _in_flight(client) and time.monotonic() < deadline:
        client._multi.select(0.25)
        client._timeout_check()
    if _in_flight(client):
        log.warning(
            "stopping: %d SQS request(s) still unanswered after %.0fs", _in_flight(client), wait
        )
