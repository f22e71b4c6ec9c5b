"""Frontend notifications through a real `-Q notifications` worker: stored once, published once."""

from __future__ import annotations

import json
import secrets

import pytest

from kopter import aws
from kopter.errors import Refused
from kopter.notifications import Notice
from kopter.settings import get_settings
from kopter.tables import FrontendNotification
from tasks.notifications import deliver_notification, raise_notification
from tests.conftest import wait_for
from tests.support.drain import emptied, wait_drained


@pytest.fixture
def topic_and_observer():
    """An SNS topic, and an SQS queue subscribed to it that shows what was published."""
    name = f"kopter-test-{secrets.token_hex(4)}"
    sns, sqs = aws.client("sns", get_settings()), aws.client("sqs", get_settings())
    topic = sns.create_topic(Name=name)["TopicArn"]
    observer = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=observer, AttributeNames=["QueueArn"])["Attributes"]
    sns.subscribe(
        TopicArn=topic,
        Protocol="sqs",
        Endpoint=arn["QueueArn"],
        Attributes={"RawMessageDelivery": "true"},
    )
    return topic, observer


def _all_messages(url: str) -> list[dict]:
    """Every message on the queue at ``url``, each once (they stay hidden while paging)."""
    sqs, messages = aws.client("sqs", get_settings()), []
    while batch := sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=2, VisibilityTimeout=60
    ).get("Messages", []):
        messages.extend(batch)
    return messages


def _notice(tenant: str, subject: str = "account:123456789012") -> Notice:
    return Notice(
        tenant_id=tenant,
        kind="account-unhealthy",
        subject=subject,
        occurred_at="2026-11-27T10:00:00Z",
        severity="high",
        title="kopter cannot reach account 123456789012",
        body="AssumeRole was denied: check the role's trust policy and ExternalId.",
        links={"account": "123456789012"},
    )


def test_the_same_notice_raised_three_times_is_stored_and_published_once(
    kopter, workers, topic_and_observer
):
    topic, observer = topic_and_observer
    tenant = kopter.new_tenant()
    # Notices earlier modules raised with no worker to deliver them would be published here too
    # (CI once counted 4): they go first.
    emptied("notifications")
    worker = workers.start(
        "notifications", "notifications", env={"KOPTER_NOTIFICATIONS_TOPIC_ARN": topic}
    )
    workers.wait_ready(worker)
    notice = _notice(tenant)
    raise_notification(notice)  # two sources raising the same notice...
    raise_notification(notice)
    results = [deliver_notification.delay(notice.as_message()) for _ in range(2)]  # ...redelivered
    statuses = [r.get(timeout=60) for r in results]
    assert set(statuses) <= {"stored", "duplicate"}
    wait_for(lambda: len(kopter.rows("notifications", "--tenant", tenant)) == 1, 30, "the row")
    wait_drained("notifications")  # every delivery finished before counting
    [row] = kopter.rows("notifications", "--tenant", tenant)
    assert row["kind"] == "account-unhealthy" and row["severity"] == "high"
    assert row["title"] == notice.title and row["links"] == {"account": "123456789012"}
    assert row["read"] is False
    assert row["notification_key"] == notice.key

    published = _all_messages(observer)
    assert [json.loads(m["Body"])["id"] for m in published] == [notice.notification_id]

    other = _notice(tenant, subject="account:210987654321")
    deliver_notification.delay(other.as_message()).get(timeout=60)
    assert len(kopter.rows("notifications", "--tenant", tenant)) == 2
    FrontendNotification.get(tenant, notice.key).update(
        actions=[FrontendNotification.read.set(True)]
    )
    [unread] = kopter.rows("notifications", "--tenant", tenant, "--unread")
    assert unread["notification_key"] == other.key
    assert kopter.rows("notifications", "--tenant", kopter.new_tenant()) == []


def test_a_notice_of_unknown_severity_is_refused():
    with pytest.raises(Refused, match="severity 'dire'"):
        Notice("t", "k", "s", "2026-01-01T00:00:00Z", "dire", "title", "body")
