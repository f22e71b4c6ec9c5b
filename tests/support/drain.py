"""Waiting for a work queue to drain, as SQS counts its messages: what a fixed sleep would guess."""

from __future__ import annotations

from kopter import aws, queues
from kopter.settings import get_settings
from tests.conftest import wait_for

# Waiting, in flight (received and not deleted: tasks are acknowledged once finished), delayed.
DEPTHS = [
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
]


def wait_drained(queue: str, timeout: float = 60) -> None:
    """Until no message of the work queue ``queue`` waits, runs or is delayed: every task sent to
    it before the call has finished (a worker must be consuming it)."""
    sqs = aws.client("sqs", get_settings())
    url = sqs.get_queue_url(QueueName=queues.sqs_name(get_settings(), queue))["QueueUrl"]

    def drained() -> bool:
        depths = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=DEPTHS)["Attributes"]
        return not any(int(depth) for depth in depths.values())

    wait_for(drained, timeout, f"the {queue} queue drained")


def empty(queue: str, dlq: bool = False) -> None:
    """Delete what waits on the work queue ``queue`` (or on its DLQ) (SQS allows one PurgeQueue
    a minute, too few for a fixture)."""
    sqs = aws.client("sqs", get_settings())
    name = (queues.dlq_name if dlq else queues.sqs_name)(get_settings(), queue)
    url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
        entries = [
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
        ]
        sqs.delete_message_batch(QueueUrl=url, Entries=entries)


def emptied(queue: str, timeout: float = 60) -> None:
    """Until the work queue ``queue`` and its DLQ hold nothing: what waits deleted, what is in
    flight or delayed deleted once it shows (within the visibility timeout, no worker
    consuming)."""
    sqs = aws.client("sqs", get_settings())
    url = sqs.get_queue_url(QueueName=queues.sqs_name(get_settings(), queue))["QueueUrl"]

    def nothing_left() -> bool:
        empty(queue)
        empty(queue, dlq=True)
        depths = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=DEPTHS)["Attributes"]
        return not any(int(depth) for depth in depths.values())

    wait_for(nothing_left, timeout, f"the {queue} queue and its DLQ emptied", 1)
