"""The raw queue's policy admits exactly the registered accounts' buckets and topics: written by
`kopter accounts add` and `remove`, repaired by `kopter bootstrap`, read back from SQS and
evaluated with iam-simulate (S3 and SNS sending as their service principals)."""

from __future__ import annotations

import json

import pytest

from kopter import aws, queues
from kopter.errors import Refused
from kopter.iam import raw_queue
from kopter.iam.raw_queue import Admitted
from kopter.settings import get_settings
from tests.conftest import new_account_id
from tests.support.iamsim import Authorization, evaluate

pytestmark = pytest.mark.long


def _queue() -> tuple[str, str]:
    sqs = aws.client("sqs", get_settings())
    url = sqs.get_queue_url(QueueName=queues.sqs_name(get_settings(), "cloudtrail-notifications"))[
        "QueueUrl"
    ]
    return url, sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]


def _policy() -> dict:
    url, _ = _queue()
    attributes = aws.client("sqs", get_settings()).get_queue_attributes(
        QueueUrl=url, AttributeNames=["Policy"]
    )
    return json.loads(attributes.get("Attributes", {}).get("Policy") or "null")


def _sends(
    queue_arn: str, notices: list[tuple[str, str, str]], policy: dict | None = None
) -> list[str]:
    """Each (service, source ARN, source account) sending to the raw queue: the decisions, under
    ``policy`` (by default the one SQS holds)."""
    requests = [
        Authorization(
            service,
            "sqs:SendMessage",
            queue_arn,
            queue_arn.split(":")[4],
            {"aws:SourceArn": arn, "aws:SourceAccount": account},
        )
        for service, arn, account in notices
    ]
    return [d.decision for d in evaluate(requests, [], policy or _policy())]


def test_the_raw_queue_admits_the_registered_buckets_and_topics_only(kopter):
    _, queue_arn = _queue()
    bucket = f"trail-{new_account_id()}"
    with_bucket = kopter.connect("--cloudtrail-bucket", bucket)
    topics_only = kopter.connect()
    stranger = new_account_id()
    s3, sns = "s3.amazonaws.com", "sns.amazonaws.com"
    notices = [
        (s3, f"arn:aws:s3:::{bucket}", with_bucket.account),
        (sns, f"arn:aws:sns:eu-west-1:{topics_only.account}:trail-topic", topics_only.account),
        (sns, f"arn:aws:sns:us-east-1:{with_bucket.account}:t", with_bucket.account),
        # Never: another bucket of the account, the bucket claimed by another account, an
        # unregistered account's bucket or topic, S3 posing as a topic.
        (s3, "arn:aws:s3:::another-bucket", with_bucket.account),
        (s3, f"arn:aws:s3:::{bucket}", stranger),
        (s3, f"arn:aws:s3:::trail-{stranger}", stranger),
        (sns, f"arn:aws:sns:us-east-1:{stranger}:t", stranger),
        (s3, f"arn:aws:sns:us-east-1:{topics_only.account}:t", topics_only.account),
    ]
    assert _sends(queue_arn, notices) == ["Allowed"] * 3 + ["ImplicitlyDenied"] * 5

    # Removed: its bucket and topics are refused, the other account's still pass.
    kopter(
        "accounts", "remove", "--tenant", with_bucket.tenant, "--account-id", with_bucket.account
    )
    assert _sends(queue_arn, notices[:3]) == ["ImplicitlyDenied", "Allowed", "ImplicitlyDenied"]
    assert kopter.rows("accounts", "list", "--tenant", with_bucket.tenant) == []

    # Drift is repaired by bootstrap.
    url, _ = _queue()
    aws.client("sqs", get_settings()).set_queue_attributes(QueueUrl=url, Attributes={"Policy": ""})
    assert _policy() is None
    repaired = [r for r in kopter.rows("bootstrap") if r["kind"] == "policy"]
    assert [r["action"] for r in repaired] == ["updated"]
    assert _sends(queue_arn, notices[1:2]) == ["Allowed"]
    assert [r["action"] for r in kopter.rows("bootstrap") if r["kind"] == "policy"] == ["unchanged"]


def test_past_sqs_policy_limit_the_policy_admits_accounts_then_refuses():
    arn = "arn:aws:sqs:us-east-1:123456789012:kopter-cloudtrail-notifications"
    few = raw_queue.policy(
        arn, Admitted.registered((f"{i:012d}", f"t-{i:012d}") for i in range(10))
    )
    assert few is not None and [s["Sid"] for s in few["Statement"]] == [
        "RegisteredBuckets",
        "RegisteredTopics",
    ]
    many = raw_queue.policy(
        arn, Admitted.registered((f"{i:012d}", f"t-{i:012d}") for i in range(300))
    )
    assert many is not None and [s["Sid"] for s in many["Statement"]] == ["RegisteredAccounts"]
    assert raw_queue.fits(many)
    # That form admits the registered accounts' buckets and topics, whatever their names, and
    # still nobody else's.
    s3, sns = "s3.amazonaws.com", "sns.amazonaws.com"
    sent = [
        (s3, "arn:aws:s3:::t-000000000007", "000000000007"),
        (s3, "arn:aws:s3:::another-bucket", "000000000299"),
        (sns, "arn:aws:sns:eu-west-1:000000000150:trail-topic", "000000000150"),
        (s3, "arn:aws:s3:::t-000000000007", "000000000300"),
        (sns, "arn:aws:sns:eu-west-1:000000000300:trail-topic", "000000000300"),
    ]
    assert _sends(arn, sent, many) == ["Allowed"] * 3 + ["ImplicitlyDenied"] * 2
    assert _sends(arn, sent[:1] + sent[3:4], few) == ["Allowed", "ImplicitlyDenied"]
    assert raw_queue.policy(arn, Admitted()) is None
    # A registration added to a policy adds, and a policy read back admits what it said.
    assert Admitted.of(few).adding("999999999999", None) == Admitted.registered(
        [*((f"{i:012d}", f"t-{i:012d}") for i in range(10)), ("999999999999", None)]
    )
    with pytest.raises(Refused, match="exceed SQS's 8192 bytes"):
        raw_queue.policy(arn, Admitted.registered((f"{i:012d}", None) for i in range(1000)))
