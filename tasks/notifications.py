"""The `notifications` queue: what customers should see.

Every part of kopter raises notifications through ``raise_notification``; the worker stores each
once and publishes it to the SNS topic when one is configured.
"""

from __future__ import annotations

from typing import Any

from kopter import notifications
from kopter.settings import get_settings
from tasks.app import app


def raise_notification(notice: notifications.Notice) -> None:
    deliver_notification.delay(notice.as_message())


@app.task
def deliver_notification(message: dict[str, Any]) -> str:
    return notifications.deliver(notifications.Notice.from_message(message), get_settings())
