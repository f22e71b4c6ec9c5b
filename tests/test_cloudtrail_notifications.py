"""Every shape of CloudTrail delivery notification, and the keys that are log files."""

import json

import pytest

from kopter.cloudtrail.notifications import Unparseable, parse
from kopter.cloudtrail.objects import log_object

pytestmark = pytest.mark.unit

KEY = (
    "my trail/AWSLogs/o-1234abcde/222222222222/CloudTrail/us-east-1/2025/03/06/"
    "222222222222_CloudTrail_us-east-1_20250306T0230Z_QF6qcgyiaVnSueXa.json.gz"
)
ENCODED_KEY = KEY.replace(" ", "+")


def s3_event(key: str = ENCODED_KEY, event: str = "ObjectCreated:Put") -> dict:
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "eventName": event,
                "s3": {"bucket": {"name": "trail-bucket"}, "object": {"key": key, "size": 9}},
            }
        ]
    }


def sns(message: str, kind: str = "Notification") -> str:
    return json.dumps(
        {"Type": kind, "MessageId": "m-1", "TopicArn": "arn:aws:sns:x", "Message": message}
    )


def test_s3_event_key_is_url_decoded():
    assert parse(json.dumps(s3_event())).objects == [("trail-bucket", KEY)]


def test_s3_event_inside_sns():
    assert parse(sns(json.dumps(s3_event()))).objects == [("trail-bucket", KEY)]


def test_cloudtrail_own_sns_message():
    message = json.dumps({"s3Bucket": "trail-bucket", "s3ObjectKey": [KEY, KEY + "x"]})
    assert parse(sns(message)).objects == [("trail-bucket", KEY), ("trail-bucket", KEY + "x")]
    assert parse(message).objects == [("trail-bucket", KEY), ("trail-bucket", KEY + "x")]


@pytest.mark.parametrize(
    "body",
    [
        json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "b"}),
        sns(json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent"})),
        sns("CloudTrail validation message."),
        json.dumps("CloudTrail validation message."),
        sns("", kind="SubscriptionConfirmation"),
        sns("", kind="UnsubscribeConfirmation"),
        json.dumps(s3_event(event="ObjectRemoved:Delete")),
    ],
)
def test_noise_is_recognized(body):
    notification = parse(body)
    assert notification.noise and not notification.objects


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("not json at all", "not JSON"),
        ("[1, 2]", "JSON list"),
        (json.dumps({"hello": "world"}), "unknown shape"),
        (json.dumps({"Records": [{"s3": {}}]}), "without s3.bucket.name"),
        (json.dumps({"Records": "x"}), "not a list"),
        (sns("{not json"), "SNS Message is not JSON"),
        (json.dumps({"Type": "Notification", "Message": 7}), "without a Message"),
        (json.dumps({"Type": "Weird"}), "SNS message of type 'Weird'"),
        (json.dumps({"s3Bucket": "b", "s3ObjectKey": "k"}), "s3ObjectKey list"),
    ],
)
def test_unknown_shapes_say_why(body, reason):
    with pytest.raises(Unparseable, match=reason):
        parse(body)


def test_log_files_and_their_accounts():
    obj = log_object("b", KEY)
    assert obj is not None
    assert (obj.account_id, obj.region, obj.org_id, obj.prefix) == (
        "222222222222",
        "us-east-1",
        "o-1234abcde",
        "my trail",
    )
    standard = log_object(
        "b",
        "AWSLogs/111122223333/CloudTrail/eu-west-1/2026/01/02/"
        "111122223333_CloudTrail_eu-west-1_20260102T1015Z_abcdefABCDEF0123.json.gz",
    )
    assert standard and standard.account_id == "111122223333" and standard.prefix is None


@pytest.mark.parametrize(
    "key",
    [
        "AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2026/01/02/"
        "111122223333_CloudTrail-Digest_us-east-1_trail_us-east-1_20260102T101500Z.json.gz",
        "AWSLogs/111122223333/CloudTrail/us-east-1/2026/01/02/",
        "AWSLogs/111122223333/CloudTrail/us-east-1/2026/01/02/notes.txt",
        "AWSLogs/111122223333/CloudTrail/us-east-1/2026/01/02/"
        "999999999999_CloudTrail_us-east-1_20260102T1015Z_abcdefABCDEF0123.json.gz",
    ],
)
def test_digests_and_other_keys_are_not_log_files(key):
    assert log_object("b", key) is None
