"""Keeping the messages a worker holds hidden for as long as it holds them.

SQS hands a message to another consumer once its visibility timeout runs out, whether or not the
first is still working on it. This worker step renews the visibility of every message the worker
holds (prefetched or running: a task waiting for its countdown waits in SQS, see
tasks/consumer.py) every third of the timeout. So a task
may run longer than the visibility timeout without being started twice, and the timeout only
decides how soon the messages of a worker that died come back.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from celery.worker import state

from kopter.queues import extend_visibility
from kopter.settings import get_settings
from tasks.steps import ThreadStep

log = logging.getLogger(__name__)


def held_messages() -> list[tuple[str, str]]:
    held = []
    for request in state.requests.copy().values():  # dict.copy holds the GIL: a consistent view
        info = request.message.delivery_info
        if "sqs_queue" in info and "sqs_message" in info:
            held.append((info["sqs_queue"], info["sqs_message"]["ReceiptHandle"]))
    return held


class VisibilityKeeper(ThreadStep):
    label = "SQS visibility keeper"
    thread_name = "visibility-keeper"

    def loop(self, worker: Any) -> Callable[[threading.Event], None]:
        settings = get_settings()
        interval = max(1.0, settings.visibility_timeout / 3)

        def keep(stop: threading.Event) -> None:
            while not stop.wait(interval):
                held = held_messages()
                if not held:
                    continue
                try:
                    extended = extend_visibility(settings, held)
                    log.debug("visibility extended for %d of %d messages", extended, len(held))
                except Exception:
                    log.exception("could not extend the visibility of %d messages", len(held))

        return keep
