"""A worker step that runs a loop in a thread of the worker's main process beside the consumer."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from celery import bootsteps


class ThreadStep(bootsteps.StartStopStep):
    """Subclasses give ``loop(worker)``: a function of a stop event, run until it is set."""

    thread_name = "kopter-step"

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def loop(self, worker: Any) -> Callable[[threading.Event], None]:
        raise NotImplementedError

    def start(self, worker: Any) -> None:
        self._thread = threading.Thread(
            target=self.loop(worker), args=(self._stop,), name=self.thread_name, daemon=True
        )
        self._thread.start()

    def stop(self, worker: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=15)
