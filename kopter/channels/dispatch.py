"""Enqueueing a notification's deliveries once, however often its message is delivered.

The notifications worker stores a notice, then claims the right to enqueue its deliveries (a
conditional update: of deliveries of its message racing, one wins), enqueues one per channel
that wants it, and marks the notification ``dispatched``. A claim lapses after ``lease``
seconds, the claiming task's time limit: a worker that died between claim and mark leaves its
message to SQS, which hands it out again after the visibility timeout, and that delivery claims
anew and enqueues them again. So a delivery may be sent twice (the receiver drops the second by
its ``X-Kopter-Delivery`` id), and none is lost.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from kopter import dynamo
from kopter.notifications import Notice
from kopter.tables import FrontendNotification

N = FrontendNotification


def claim(notice: Notice, lease: int) -> bool:
    """Whether this caller is to enqueue the stored notification's deliveries."""
    now = datetime.now(UTC)
    return dynamo.update_if(
        N(notice.tenant_id, notice.key),
        [N.dispatch_claimed_at.set(now)],
        N.notification_key.exists()
        & (N.dispatched.does_not_exist() | (N.dispatched == False))  # noqa: E712
        & (
            N.dispatch_claimed_at.does_not_exist()
            | (N.dispatch_claimed_at < now - timedelta(seconds=lease))
        ),
    )


def done(notice: Notice) -> None:
    dynamo.update_if(
        N(notice.tenant_id, notice.key),
        [N.dispatched.set(True)],
        N.notification_key.exists(),
    )
