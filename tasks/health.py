"""The worker's heartbeat for `kopter health worker` (kopter/health.py reads it).

Written from the worker's event loop, so a loop that stopped turning stops the heartbeat; it
carries when SQS last answered the consumer's receive (tasks/sqs.py), and whether the consumer
had room for more work: a worker whose pool runs all it may hold does not receive, and is not
dead for it.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import bootsteps
from celery.worker import state

from kopter.health import heartbeat_path, write_heartbeat
from kopter.settings import get_settings
from tasks import sqs

log = logging.getLogger(__name__)


class Heartbeat(bootsteps.StartStopStep):
    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, c: Any, **kwargs: Any) -> None:
        self.tref: Any = None

    def start(self, c: Any) -> None:
        settings = get_settings()
        path = heartbeat_path(settings, "worker", c.hostname)
        # Four beats per grace period; the probe calls the loop stopped after two missed.
        interval = settings.health_grace / 4

        def beat() -> None:
            channel = c.task_consumer.channel if c.task_consumer else None
            busy = channel is not None and not channel.qos.can_consume()
            try:
                write_heartbeat(
                    path,
                    {
                        "received_at": sqs.last_receive_answer,
                        "busy": busy,
                        "running": len(state.active_requests),
                    },
                )
            except OSError as e:
                log.warning("cannot write the heartbeat %s: %s", path, e)

        beat()
        self.tref = c.timer.call_repeatedly(interval, beat)

    def stop(self, c: Any) -> None:
        if self.tref is not None:
            self.tref.cancel()
            self.tref = None
