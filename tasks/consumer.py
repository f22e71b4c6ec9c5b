"""The worker's consumer: a message Celery cannot run is parked with its reason.

Celery acknowledges a message it cannot decode, which deletes it; a message that names an unknown
task or is no task message at all it rejects, which kombu leaves for SQS to move to the DLQ
after ``KOPTER_MAX_RECEIVE_COUNT`` receives, with no reason anyone can read. kopter's consumer
puts the message, as it was received, in its queue's DLQ at once with the reason, and deletes
it from the queue: `kopter dlq show` lists it, `kopter dlq redrive` sends it back once the cause
is fixed (a worker that knows the task, say). When parking fails, Celery's own handling stands.

A task message that arrives before it is due (its wait was longer than SQS's 900 s delay, the
most one send can ask) goes back to SQS with the delay that remains, and is deleted here: a worker
holds only what it runs, never messages waiting for their time (tasks/base.py sets the delay).

Each parked message is also a failed task in Flower, with the reason as its exception: its id is
the task's id when the message names one, otherwise the message's id in the DLQ, the ids `kopter
dlq show` lists.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from kopter import dlq
from kopter.queues import WORK_QUEUES, send_delayed
from kopter.settings import get_settings
from tasks import controlplane, shutdown
from tasks.base import sqs_delay

log = logging.getLogger(__name__)


# A task due sooner than this is held by the worker until it is due, as Celery does.
HOLD_AT_MOST = 1.0


class Consumer(controlplane.Consumer):
    def create_task_handler(self, *args: Any, **kwargs: Any) -> Any:
        handle = super().create_task_handler(*args, **kwargs)

        def on_task_received(message: Any) -> None:
            if not self._send_back_until_due(message):
                handle(message)

        return on_task_received

    def _send_back_until_due(self, message: Any) -> bool:
        """Send a message that is not due yet back to SQS with the delay that remains, and
        delete it here; False to let Celery take it (due, expired, or not sent back)."""
        headers = message.headers or {}
        remaining = _seconds_until(headers.get("eta"))
        if remaining is None or remaining <= HOLD_AT_MOST:
            return False
        if (_seconds_until(headers.get("expires")) or 1.0) <= 0:
            return False  # Celery revokes it
        info = message.delivery_info or {}
        raw = (info.get("sqs_message") or {}).get("Body")
        url = info.get("sqs_queue")
        if raw is None or url is None:
            return False
        delay = sqs_delay(remaining)
        try:
            send_delayed(get_settings(), url, raw, delay)
        except Exception:
            log.exception("task %s: cannot send it back to SQS until due", headers.get("id"))
            return False
        message.ack()
        log.info(
            "task %s[%s] due in %.0fs: back in SQS for %ds",
            headers.get("task"),
            headers.get("id"),
            remaining,
            delay,
        )
        return True

    def on_close(self) -> None:
        # Celery drops what the worker holds and has not started here: a stopping worker gives
        # back to SQS now what no pool process was sent, not when its running tasks have ended,
        # runs what one was, and gives back what its last receive brings (tasks/shutdown.py).
        unsent, sent = shutdown.unstarted_requests()
        super().on_close()
        shutdown.keep_sent(sent)
        shutdown.give_back_unstarted(unsent)
        long_poll = float(self.app.conf.broker_transport_options["wait_time_seconds"])
        shutdown.finish_receives(self.hub, self.task_consumer, long_poll)

    def on_decode_error(self, message: Any, exc: Exception) -> None:
        if not self._park(message, f"cannot decode the message: {exc}"):
            super().on_decode_error(message, exc)

    def on_unknown_message(self, body: Any, message: Any) -> None:
        if not self._park(message, "not a Celery task message"):
            super().on_unknown_message(body, message)

    def on_unknown_task(self, body: Any, message: Any, exc: Exception) -> None:
        if not self._park(message, f"unknown task: {exc}"):
            super().on_unknown_task(body, message, exc)

    def on_invalid_task(self, body: Any, message: Any, exc: Exception) -> None:
        if not self._park(message, f"invalid task message: {exc}"):
            super().on_invalid_task(body, message, exc)

    def _park(self, message: Any, reason: str) -> bool:
        parked_id = _park(message, reason)
        if parked_id is None:
            return False
        dispatcher = getattr(self, "event_dispatcher", None)
        if dispatcher is not None:
            headers = message.headers or {}
            uuid = headers.get("id") or parked_id
            name = headers.get("task") or "(not a task message)"
            # A failed task to Flower: received (its name and arguments), then failed.
            dispatcher.send("task-received", uuid=uuid, name=name, args=headers.get("argsrepr", ""))
            dispatcher.send("task-failed", uuid=uuid, exception=reason, traceback="")
        return True


def _seconds_until(when: str | None) -> float | None:
    if not when:
        return None
    moment = datetime.fromisoformat(when)
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return (moment - datetime.now(UTC)).total_seconds()


def _park(message: Any, reason: str) -> str | None:
    """Park ``message`` in its queue's DLQ and delete it from the queue: its id in the DLQ, or
    None if it could not be parked."""
    parked_id = park_copy(message, reason)
    if parked_id is not None:
        message.ack()
    return parked_id


def park_copy(message: Any, reason: str) -> str | None:
    """Put ``message``, as it was received, in its queue's DLQ with ``reason``, leaving it in the
    queue for the caller to delete: its id in the DLQ, or None if it could not be parked."""
    settings = get_settings()
    info = message.delivery_info or {}
    raw = (info.get("sqs_message") or {}).get("Body")
    # A body that is no kombu envelope carries no routing key: its queue's URL names it.
    url = str(info.get("sqs_queue") or "")
    queue = info.get("routing_key") or url.rsplit("/", 1)[-1].removeprefix(settings.prefix)
    if raw is None or queue not in WORK_QUEUES:
        log.error("%s: a message of no kopter queue (%s) cannot be parked", reason, queue)
        return None
    try:
        parked_id = dlq.park(settings, queue, raw, reason)
    except Exception:
        log.exception("%s: cannot park it in %s's DLQ", reason, queue)
        return None
    log.error("%s: message parked in %s's DLQ", reason, queue)
    return parked_id
