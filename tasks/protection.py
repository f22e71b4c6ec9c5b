"""ECS task scale-in protection for a worker on ECS (``ECS_AGENT_URI`` set; none elsewhere).

kopter/scale_in_protection.py decides when to call the ECS agent; this worker step tells it what
the worker holds. A message taken is protected from the worker's event loop (``task_received``,
before the task is handed to a pool process, so the task starts protected); a thread of the
step's own renews what running tasks still need and turns protection off when the worker is
idle or stopping, so those calls delay no acknowledgement.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

from celery import signals
from celery.worker import state

from kopter.errors import ConfigError
from kopter.scale_in_protection import Agent, ScaleInProtection, agent_uri
from tasks.steps import ThreadStep

log = logging.getLogger(__name__)

TICK = 1.0

_protection: ScaleInProtection | None = None
_wake = threading.Event()
# When each held request was taken (wall clock, as Celery's ``time_start``): the age of a task
# that waits for a pool process.
_taken_at: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()


def _time_limit(request: Any) -> float:
    """The hard time limit the pool enforces on ``request``: its message's, its task's, or the
    worker's."""
    hard = request.time_limits[0] or request.task.time_limit or request.app.conf.task_time_limit
    return float(hard)


def held() -> list[tuple[float, float]]:
    """Each request the worker holds, as (seconds since it started or was taken, time limit)."""
    now = time.time()
    found = []
    for request in state.requests.copy().values():  # dict.copy holds the GIL: a consistent view
        since = request.time_start or _taken_at.get(request, now)
        found.append((now - since, _time_limit(request)))
    return found


@signals.task_received.connect
def _taken(request: Any, **_: Any) -> None:
    if _protection is None:
        return
    _taken_at[request] = time.time()
    _protection.taken(_time_limit(request))


@signals.worker_shutting_down.connect
def _stopping(**_: Any) -> None:
    if _protection is not None:
        _protection.stop()
        _wake.set()  # off now, from the thread: a signal handler makes no call


class ScaleInProtectionStep(ThreadStep):
    label = "ECS task scale-in protection"
    thread_name = "scale-in-protection"

    def start(self, worker: Any) -> None:
        global _protection
        try:
            uri = agent_uri(os.environ)
        except ConfigError as e:
            log.critical("%s", e)
            raise SystemExit(f"kopter: error: {e}") from None
        if uri is None:
            return  # not on ECS
        # Idle for a whole long poll of SQS (celeryconfig): the worker found nothing to do.
        idle_grace = float(worker.app.conf.broker_transport_options["wait_time_seconds"])
        _protection = ScaleInProtection(Agent(uri), idle_grace)
        log.info("scale-in protection through the ECS agent at %s", uri)
        super().start(worker)

    def loop(self, worker: Any) -> Callable[[threading.Event], None]:
        protection = _protection
        assert protection is not None

        def keep(stop: threading.Event) -> None:
            # A tick after the stop too: a worker that exits at once turns protection off first.
            while True:
                _wake.wait(TICK)
                _wake.clear()
                try:
                    protection.tick(held())
                except Exception:
                    log.exception("scale-in protection: cannot tell what the worker holds")
                if stop.is_set():
                    return

        return keep

    def stop(self, worker: Any) -> None:
        if _protection is not None:
            _protection.stop()  # however the worker stops, not only on a signal
        self._stop.set()
        _wake.set()
        super().stop(worker)
