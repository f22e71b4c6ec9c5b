"""The `notifications` queue: what customers should see.

Every part of kopter raises notifications through ``raise_notification``; the worker stores each
once, publishes it to the SNS topic when one is configured, and enqueues its deliveries to the
tenant's channels on the `deliveries` queue (tasks/deliveries.py).
"""

from __future__ import annotations

from typing import Any

from kopter import notifications
from kopter.settings import get_settings
from tasks import deliveries
from tasks.app import app


def raise_notification(notice: notifications.Notice) -> None:
    deliver_notification.delay(notice.as_message())


@app.task
def deliver_notification(message: dict[str, Any]) -> str:
    notice = notifications.Notice.from_message(message)
    status = notifications.deliver(notice, get_settings())
    deliveries.fan_out(notice)
    return status
