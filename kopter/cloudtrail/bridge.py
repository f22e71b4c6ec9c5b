"""The bridge from AWS's notifications to kopter's ingest jobs.

It drains the raw ``cloudtrail-notifications`` queue, where S3, SNS or CloudTrail announce new log
files in their own formats (``notifications``), and hands each log object to ``submit`` (which
enqueues an ``ingest`` task). Noise is deleted. A message of no known shape is moved to the raw
queue's DLQ at once, with the reason in its ``kopter-reason`` attribute, and an error line; it
never blocks the messages behind it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from kopter import aws, queues
from kopter.cloudtrail import notifications
from kopter.cloudtrail.objects import log_object
from kopter.dlq import reason_attributes
from kopter.settings import Settings

log = logging.getLogger(__name__)

RAW_QUEUE = "cloudtrail-notifications"


class NotificationBridge:
    def __init__(self, settings: Settings, submit: Callable[[str, str], Any]) -> None:
        self._sqs = aws.client("sqs", settings)
        self._url = self._sqs.get_queue_url(QueueName=queues.sqs_name(settings, RAW_QUEUE))[
            "QueueUrl"
        ]
        self._dlq_url = self._sqs.get_queue_url(QueueName=queues.dlq_name(settings, RAW_QUEUE))[
            "QueueUrl"
        ]
        self._submit = submit

    def poll_once(self, wait_seconds: int = 5) -> int:
        """Receive up to ten messages and handle each; return how many arrived."""
        response = self._sqs.receive_message(
            QueueUrl=self._url, MaxNumberOfMessages=10, WaitTimeSeconds=wait_seconds
        )
        messages = response.get("Messages", [])
        for message in messages:
            self.handle(message)
        return len(messages)

    def handle(self, message: dict[str, Any]) -> None:
        try:
            notification = notifications.parse(message["Body"])
        except notifications.Unparseable as e:
            self._park(message, str(e))
            return
        if notification.noise:
            log.info("cloudtrail-notifications: deleting %s", notification.noise)
        for bucket, key in notification.objects:
            if log_object(bucket, key) is None:
                log.debug("skipping s3://%s/%s: not a CloudTrail log file", bucket, key)
                continue
            self._submit(bucket, key)
        self._delete(message)

    def run(self, stop: threading.Event, wait_seconds: int = 5) -> None:
        """Poll until ``stop`` is set. An error is logged and polling resumes after a pause:
        the bridge must outlive a flaky network, not take the worker down."""
        pause = 1.0
        while not stop.is_set():
            try:
                self.poll_once(wait_seconds)
                pause = 1.0
            except Exception:
                log.exception("cloudtrail-notifications: polling failed; again in %.0fs", pause)
                stop.wait(pause)
                pause = min(pause * 2, 60.0)

    def _park(self, message: dict[str, Any], reason: str) -> None:
        log.error(
            "cloudtrail-notifications: message %s parked in the DLQ: %s",
            message["MessageId"],
            reason,
        )
        self._sqs.send_message(
            QueueUrl=self._dlq_url,
            MessageBody=message["Body"],
            MessageAttributes=reason_attributes(reason),
        )
        self._delete(message)

    def _delete(self, message: dict[str, Any]) -> None:
        self._sqs.delete_message(QueueUrl=self._url, ReceiptHandle=message["ReceiptHandle"])
