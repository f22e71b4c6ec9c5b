"""The `ingest` queue: CloudTrail log objects into the audit log.

A worker that consumes `ingest` also runs the notification bridge (``CloudTrailBridge``): a thread
that drains the raw `cloudtrail-notifications` queue and enqueues one ``ingest_object`` per log
file, so one command (`celery -A tasks worker -Q ingest`) serves the whole path.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from celery import signals

from kopter.cloudtrail.bridge import NotificationBridge
from kopter.cloudtrail.ingest import ingest_object as ingest_log_object
from kopter.crossaccount import shared_sessions
from kopter.detections.sigma import bundled_rules
from kopter.settings import get_settings
from tasks.app import app, consumed_queues
from tasks.notifications import raise_notification
from tasks.steps import ThreadStep

log = logging.getLogger(__name__)


# Thousands of objects an hour: what became of each is kept in its Global marker, not in Redis.
@app.task(ignore_result=True)
def ingest_object(bucket: str, key: str) -> dict[str, Any]:
    """Ingest one CloudTrail log object; refusals are final and returned, not raised. Each new
    finding's notice goes to the `notifications` queue."""
    settings = get_settings()
    sessions = shared_sessions(settings)
    return ingest_log_object(bucket, key, sessions, settings, raise_notification).as_dict()


@signals.celeryd_after_setup.connect
def _load_rules(sender: str, instance: Any, **_: Any) -> None:
    """SigmaHQ's rules parsed once, in the main process of a worker that consumes `ingest`,
    before its pool forks: every pool child inherits them instead of parsing them again on its
    first log file."""
    if "ingest" in consumed_queues(instance.app):
        bundled_rules()


class CloudTrailBridge(ThreadStep):
    """Runs the notification bridge beside a worker that consumes `ingest`."""

    label = "CloudTrail notification bridge"
    thread_name = "cloudtrail-bridge"

    def include_if(self, worker: Any) -> bool:
        return "ingest" in consumed_queues(worker.app)

    def loop(self, worker: Any) -> Callable[[threading.Event], None]:
        log.info("CloudTrail notification bridge: draining cloudtrail-notifications")
        bridge = NotificationBridge(
            get_settings(), submit=lambda bucket, key: ingest_object.delay(bucket, key)
        )
        return bridge.run


app.steps["worker"].add(CloudTrailBridge)
