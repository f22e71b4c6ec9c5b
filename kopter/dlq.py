"""Dead-letter queues: what was parked and why, and sending it back once the cause is fixed.

SQS moves a message to its queue's DLQ after ``KOPTER_MAX_RECEIVE_COUNT`` receives. A message
that could only fail again is parked at once with a ``kopter-reason`` attribute (``park``): a
notification of no known shape (the CloudTrail bridge), a task message a worker cannot decode or
does not know (``tasks.consumer``). A parked Celery task's reason is otherwise its last failure,
which the result backend in Redis still holds (for ``result_expires``).

Redrive is receive, send to the work queue, then delete from the DLQ, in that order: a message is
never deleted before SQS accepted its copy, so nothing is lost; a crash between the two leaves
the message in both queues, which is safe because every task is idempotent. (SQS's own
StartMessageMoveTask cannot stop after N messages, and moto does not implement it.)
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kopter import aws, cache
from kopter.errors import KopterError
from kopter.queues import ALL_QUEUES, _queue_url, dlq_name, sqs_name
from kopter.settings import Settings

REASON_ATTRIBUTE = "kopter-reason"
# How long a message looked at stays hidden: long enough to page through a DLQ without seeing
# a message twice, and given back (visibility 0) as soon as the listing is done.
_LOOK_SECONDS = 60


@dataclass(frozen=True)
class ParkedMessage:
    message_id: str
    sent_at: datetime | None
    receive_count: int
    task: str | None
    task_id: str | None
    args: str | None
    reason: str | None
    traceback: str | None
    body: str  # the raw body, for messages that are not Celery's (AWS notifications)


def _urls(settings: Settings, queue: str) -> tuple[str, str]:
    if queue not in ALL_QUEUES:
        raise KopterError(f"unknown queue {queue!r}: one of {', '.join(ALL_QUEUES)}")
    sqs = aws.client("sqs", settings)
    url, dlq_url = (
        _queue_url(sqs, sqs_name(settings, queue)),
        _queue_url(sqs, dlq_name(settings, queue)),
    )
    if url is None or dlq_url is None:
        raise KopterError(
            f"queue {sqs_name(settings, queue)} or its DLQ is missing: run `kopter bootstrap`"
        )
    return url, dlq_url


def park(settings: Settings, queue: str, body: str, reason: str) -> str:
    """Put ``body`` (a message as it was received) in ``queue``'s DLQ with ``reason``; its
    message id there, the one `kopter dlq show` lists."""
    _, dlq_url = _urls(settings, queue)
    sent = aws.client("sqs", settings).send_message(
        QueueUrl=dlq_url, MessageBody=body, MessageAttributes=reason_attributes(reason)
    )
    return str(sent["MessageId"])


def reason_attributes(reason: str) -> dict[str, Any]:
    """The message attributes that carry why a message was parked (SQS keeps 1 KB of it here)."""
    return {REASON_ATTRIBUTE: {"DataType": "String", "StringValue": reason[:1024]}}


def _receive(sqs: Any, url: str, limit: int) -> Iterator[dict[str, Any]]:
    """Up to ``limit`` messages, each once: received messages stay hidden while paging."""
    seen = 0
    while seen < limit:
        batch = sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=min(10, limit - seen),
            VisibilityTimeout=_LOOK_SECONDS,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not batch:
            return
        seen += len(batch)
        yield from batch


def _give_back(sqs: Any, url: str, handles: list[str]) -> None:
    for start in range(0, len(handles), 10):
        entries = [
            {"Id": str(i), "ReceiptHandle": h, "VisibilityTimeout": 0}
            for i, h in enumerate(handles[start : start + 10])
        ]
        sqs.change_message_visibility_batch(QueueUrl=url, Entries=entries)


def show(settings: Settings, queue: str, limit: int = 100) -> list[ParkedMessage]:
    """The messages parked in ``queue``'s DLQ (up to ``limit``), left there."""
    _, dlq_url = _urls(settings, queue)
    sqs = aws.client("sqs", settings)
    messages = list(_receive(sqs, dlq_url, limit))
    try:
        return [_parked(settings, m) for m in messages]
    finally:
        _give_back(sqs, dlq_url, [m["ReceiptHandle"] for m in messages])


def redrive(settings: Settings, queue: str, limit: int | None = None) -> int:
    """Move up to ``limit`` (default all) messages from ``queue``'s DLQ back to ``queue``;
    return how many moved."""
    url, dlq_url = _urls(settings, queue)
    sqs = aws.client("sqs", settings)
    moved = 0
    while limit is None or moved < limit:
        batch = list(_receive(sqs, dlq_url, min(10, limit - moved) if limit else 10))
        if not batch:
            break
        entries = [
            {
                "Id": str(i),
                "MessageBody": m["Body"],
                "MessageAttributes": {
                    k: v for k, v in m.get("MessageAttributes", {}).items() if k != REASON_ATTRIBUTE
                },
            }
            for i, m in enumerate(batch)
        ]
        sent = sqs.send_message_batch(QueueUrl=url, Entries=entries)
        done = [batch[int(s["Id"])] for s in sent.get("Successful", [])]
        if done:
            sqs.delete_message_batch(
                QueueUrl=dlq_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)
                ],
            )
        moved += len(done)
        if sent.get("Failed"):
            failed = sent["Failed"]
            _give_back(sqs, dlq_url, [batch[int(f["Id"])]["ReceiptHandle"] for f in failed])
            raise KopterError(
                f"SQS refused {len(failed)} messages ({failed[0].get('Message')}); "
                f"{moved} moved, the rest are still in the DLQ"
            )
    return moved


def _parked(settings: Settings, message: dict[str, Any]) -> ParkedMessage:
    attributes = message.get("Attributes", {})
    sent = attributes.get("SentTimestamp")
    reason_attribute = message.get("MessageAttributes", {}).get(REASON_ATTRIBUTE, {})
    envelope = _celery_envelope(message["Body"])
    headers = envelope.get("headers", {}) if envelope else {}
    task_id = headers.get("id")
    reason, traceback = reason_attribute.get("StringValue"), None
    if task_id and reason is None:
        reason, traceback = _last_failure(settings, str(task_id))
    return ParkedMessage(
        message_id=message["MessageId"],
        sent_at=datetime.fromtimestamp(int(sent) / 1000, UTC) if sent else None,
        receive_count=int(attributes.get("ApproximateReceiveCount", 0)),
        task=headers.get("task"),
        task_id=task_id,
        args=headers.get("argsrepr"),
        reason=reason,
        traceback=traceback,
        body=message["Body"] if envelope is None else "",
    )


def _celery_envelope(body: str) -> dict[str, Any] | None:
    """kombu's message (base64 JSON with the task's headers), or None for a foreign message."""
    try:
        envelope = json.loads(base64.b64decode(body, validate=True))
    except (binascii.Error, ValueError):
        return None
    return envelope if isinstance(envelope, dict) and "headers" in envelope else None


def _last_failure(settings: Settings, task_id: str) -> tuple[str | None, str | None]:
    """The task's last failure as Celery's Redis result backend stored it."""
    raw = cache.client(settings).get(f"celery-task-meta-{task_id}")
    if not raw:
        return None, None
    meta = json.loads(raw)
    result = meta.get("result")
    if meta.get("status") != "FAILURE" or not isinstance(result, dict):
        return None, None
    message = result.get("exc_message")
    if isinstance(message, list):  # the exception's args
        message = ", ".join(str(m) for m in message)
    return f"{result.get('exc_type')}: {message}", meta.get("traceback")
