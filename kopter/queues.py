"""kopter's SQS queues: their names, how they are created, and how full they are.

One queue per kind of work, each with its own dead-letter queue. A message that fails
``KOPTER_MAX_RECEIVE_COUNT`` times is moved to the DLQ by SQS itself (the redrive policy), so a
poison message is parked instead of looping forever. ``cloudtrail-notifications`` is not a Celery
queue: it receives AWS's own S3/SNS/CloudTrail notifications, in AWS's formats.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from kopter import aws
from kopter.errors import NotBootstrapped
from kopter.settings import Settings

WORK_QUEUES = (
    "ingest",
    "describer",
    "aggregator",
    "pricing",
    "audit",
    "backup",
    "notifications",
    "deliveries",
)
RAW_QUEUES = ("cloudtrail-notifications",)
ALL_QUEUES = WORK_QUEUES + RAW_QUEUES
DLQ_SUFFIX = "-dlq"

RETENTION_SECONDS = 4 * 24 * 3600
DLQ_RETENTION_SECONDS = 14 * 24 * 3600  # SQS's maximum: time for an operator to look.


def dlq_attributes() -> dict[str, Any]:
    """A DLQ's attributes, as CloudFormation names them (SQS's own names)."""
    return {"MessageRetentionPeriod": DLQ_RETENTION_SECONDS, "SqsManagedSseEnabled": True}


def queue_attributes(
    visibility_timeout: Any, dlq_arn: Any, max_receive_count: Any
) -> dict[str, Any]:
    """A work (or raw) queue's attributes. `kopter bootstrap` sends them with the settings'
    values, `kopter deploy template` with its parameters: one definition, so the two cannot
    drift."""
    return {
        "VisibilityTimeout": visibility_timeout,
        "MessageRetentionPeriod": RETENTION_SECONDS,
        "SqsManagedSseEnabled": True,
        "RedrivePolicy": {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive_count},
    }


def as_sqs(attributes: dict[str, Any]) -> dict[str, str]:
    """Attributes as the SQS API takes them: every value a string, a policy as JSON."""
    return {name: _sqs_value(value) for name, value in attributes.items()}


def _sqs_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return str(value)


def sqs_name(settings: Settings, queue: str) -> str:
    return f"{settings.prefix}{queue}"


def dlq_name(settings: Settings, queue: str) -> str:
    return f"{settings.prefix}{queue}{DLQ_SUFFIX}"


@dataclass(frozen=True)
class Change:
    """What bootstrap did to one resource: created, updated or unchanged."""

    kind: str
    name: str
    action: str
    detail: str = ""


def _queue_url(sqs: Any, name: str) -> str | None:
    try:
        return str(sqs.get_queue_url(QueueName=name)["QueueUrl"])
    except ClientError as e:
        if e.response["Error"]["Code"] in (
            "AWS.SimpleQueueService.NonExistentQueue",
            "QueueDoesNotExist",
        ):
            return None
        raise


def _ensure_queue(sqs: Any, name: str, wanted: dict[str, str]) -> tuple[str, Change]:
    url = _queue_url(sqs, name)
    if url is None:
        url = sqs.create_queue(QueueName=name, Attributes=wanted)["QueueUrl"]
        return url, Change("queue", name, "created")
    current = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    differ = {k: v for k, v in wanted.items() if _normalized(k, current.get(k)) != v}
    if not differ:
        return url, Change("queue", name, "unchanged")
    sqs.set_queue_attributes(QueueUrl=url, Attributes=differ)
    return url, Change("queue", name, "updated", ", ".join(sorted(differ)))


def _normalized(attribute: str, value: str | None) -> str | None:
    # SQS returns the redrive policy with its own spacing and maxReceiveCount sometimes as a
    # string; compare it as data.
    if attribute == "RedrivePolicy" and value:
        policy = json.loads(value)
        policy["maxReceiveCount"] = int(policy["maxReceiveCount"])
        return _sqs_value(policy)
    return value


def ensure_queues(settings: Settings) -> list[Change]:
    """Create every queue and its DLQ, or bring their attributes to what settings say."""
    sqs = aws.client("sqs", settings)
    changes = []
    for queue in ALL_QUEUES:
        dlq_url, change = _ensure_queue(sqs, dlq_name(settings, queue), as_sqs(dlq_attributes()))
        changes.append(change)
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        wanted = queue_attributes(settings.visibility_timeout, dlq_arn, settings.max_receive_count)
        _, change = _ensure_queue(sqs, sqs_name(settings, queue), as_sqs(wanted))
        changes.append(change)
    return changes


def verify_queues(settings: Settings, queues: list[str] | tuple[str, ...]) -> None:
    """Refuse to run against queues that are missing or have no DLQ.

    kombu would otherwise create a missing queue on first use, without a dead-letter queue and
    with its own visibility timeout, and a poison message would then loop forever.
    """
    sqs = aws.client("sqs", settings)
    for queue in queues:
        name = sqs_name(settings, queue)
        url = _queue_url(sqs, name)
        if url is None:
            raise NotBootstrapped(f"SQS queue {name} does not exist: run `kopter bootstrap`")
        attributes = sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["RedrivePolicy", "VisibilityTimeout"]
        )["Attributes"]
        if "RedrivePolicy" not in attributes:
            raise NotBootstrapped(
                f"SQS queue {name} has no dead-letter queue: run `kopter bootstrap`"
            )
        if int(attributes["VisibilityTimeout"]) < settings.visibility_timeout:
            raise NotBootstrapped(
                f"SQS queue {name} has a visibility timeout of {attributes['VisibilityTimeout']}s"
                f", shorter than KOPTER_VISIBILITY_TIMEOUT ({settings.visibility_timeout}s): "
                "run `kopter bootstrap`"
            )


@dataclass(frozen=True)
class QueueDepth:
    queue: str
    name: str
    visible: int
    in_flight: int
    delayed: int
    dlq_visible: int
    oldest_age_seconds: float | None


_DEPTH_ATTRIBUTES = [
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
]


def depths(settings: Settings) -> list[QueueDepth]:
    """Each queue's depths, and the age of its oldest message where CloudWatch knows it.

    SQS only reports that age as the CloudWatch metric ApproximateAgeOfOldestMessage; reading
    the message itself would count as a receive and push it toward the DLQ, so kopter never
    peeks at a work queue.
    """
    sqs = aws.client("sqs", settings)
    ages = _oldest_ages(settings)
    result = []
    for queue in ALL_QUEUES:
        name = sqs_name(settings, queue)
        url = _queue_url(sqs, name)
        dlq_url = _queue_url(sqs, dlq_name(settings, queue))
        if url is None or dlq_url is None:
            raise NotBootstrapped(f"SQS queue {name} does not exist: run `kopter bootstrap`")
        a = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=_DEPTH_ATTRIBUTES)["Attributes"]
        d = sqs.get_queue_attributes(
            QueueUrl=dlq_url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
        result.append(
            QueueDepth(
                queue=queue,
                name=name,
                visible=int(a["ApproximateNumberOfMessages"]),
                in_flight=int(a["ApproximateNumberOfMessagesNotVisible"]),
                delayed=int(a["ApproximateNumberOfMessagesDelayed"]),
                dlq_visible=int(d["ApproximateNumberOfMessages"]),
                oldest_age_seconds=ages.get(name),
            )
        )
    return result


def _oldest_ages(settings: Settings) -> dict[str, float]:
    """The latest ApproximateAgeOfOldestMessage of every queue, in one GetMetricData call."""
    cloudwatch = aws.client("cloudwatch", settings)
    now = datetime.now(UTC)
    queries = [
        {
            "Id": f"q{i}",
            "Label": sqs_name(settings, queue),
            "MetricStat": {
                "Metric": {
                    "Namespace": "AWS/SQS",
                    "MetricName": "ApproximateAgeOfOldestMessage",
                    "Dimensions": [{"Name": "QueueName", "Value": sqs_name(settings, queue)}],
                },
                "Period": 60,
                "Stat": "Maximum",
            },
        }
        for i, queue in enumerate(ALL_QUEUES)
    ]
    try:
        response = cloudwatch.get_metric_data(
            MetricDataQueries=queries,
            StartTime=now - timedelta(minutes=15),
            EndTime=now + timedelta(minutes=1),  # the current, still open, period too
            ScanBy="TimestampDescending",
        )
    except ClientError:
        return {}
    ages = {}
    for series in response["MetricDataResults"]:
        if series.get("Values"):
            ages[series["Label"]] = float(series["Values"][0])
    return ages


def extend_visibility(settings: Settings, held: list[tuple[str, str]]) -> int:
    """Hide again, for a whole visibility timeout, messages a worker still holds, given as
    (queue URL, receipt handle); return how many SQS accepted. A message acknowledged in the
    meantime is refused by SQS, which is fine: it is gone."""
    sqs = aws.client("sqs", settings)
    by_queue: dict[str, list[str]] = {}
    for url, handle in held:
        by_queue.setdefault(url, []).append(handle)
    extended = 0
    for url, handles in by_queue.items():
        for start in range(0, len(handles), 10):  # SQS's batch limit
            entries = [
                {"Id": str(i), "ReceiptHandle": h, "VisibilityTimeout": settings.visibility_timeout}
                for i, h in enumerate(handles[start : start + 10])
            ]
            response = sqs.change_message_visibility_batch(QueueUrl=url, Entries=entries)
            extended += len(response.get("Successful", []))
    return extended


def send_delayed(settings: Settings, queue_url: str, body: str, seconds: int) -> None:
    """Send ``body`` (a message as it was received) to the queue again, hidden by SQS for
    ``seconds`` (at most SQS's 900)."""
    aws.client("sqs", settings).send_message(
        QueueUrl=queue_url, MessageBody=body, DelaySeconds=seconds
    )
