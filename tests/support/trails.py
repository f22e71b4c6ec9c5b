"""The two real CloudTrail samples' accounts, connected to one tenant for the whole session
(an account belongs to one tenant only), their buckets and delivered log files in moto; and the
helpers the ingest tests share."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from kopter import aws, queues
from kopter.settings import get_settings
from kopter.tables import GlobalItem
from tests.conftest import Connected, Kopter, customer_client
from tests.support.samples import CLOUD_SNITCH_FILE, STRATUS_FILE

SNITCH_KEY = "my trail/AWSLogs/o-1234abcde/222222222222/CloudTrail/us-east-1/2025/03/06/" + (
    CLOUD_SNITCH_FILE.name
)
STRATUS_KEY = (
    "AWSLogs/457448411975/CloudTrail/us-east-1/2024/07/30/"
    "457448411975_CloudTrail_us-east-1_20240730T2130Z_Str4tusRedTeam00.json.gz"
)


@dataclass
class Trail:
    tenant: str
    snitch: Connected
    stratus: Connected


@pytest.fixture(scope="session")
def trail(stack: None) -> Iterator[Trail]:
    """One tenant with the two real samples' accounts, their buckets and log files in moto."""
    kopter = Kopter()
    tenant = kopter.new_tenant()
    snitch = kopter.connect(
        "--cloudtrail-bucket",
        "snitch-trail",
        "--cloudtrail-prefix",
        "my trail",
        tenant=tenant,
        account="222222222222",
    )
    stratus = kopter.connect(
        "--cloudtrail-bucket", "stratus-trail", tenant=tenant, account="457448411975"
    )
    s3 = customer_client(snitch, "s3")
    s3.create_bucket(Bucket="snitch-trail")
    s3.put_object(Bucket="snitch-trail", Key=SNITCH_KEY, Body=CLOUD_SNITCH_FILE.read_bytes())
    s3 = customer_client(stratus, "s3")
    s3.create_bucket(Bucket="stratus-trail")
    # The sample is a bare array of records: wrapped and gzipped as CloudTrail delivers it.
    wrapped = {"Records": json.loads(STRATUS_FILE.read_text())}
    s3.put_object(
        Bucket="stratus-trail", Key=STRATUS_KEY, Body=gzip.compress(json.dumps(wrapped).encode())
    )
    yield Trail(tenant, snitch, stratus)


def raw_queue(dlq: bool = False) -> str:
    name = (queues.dlq_name if dlq else queues.sqs_name)(get_settings(), "cloudtrail-notifications")
    return aws.client("sqs", get_settings()).get_queue_url(QueueName=name)["QueueUrl"]


def notify(*bodies: str) -> None:
    for body in bodies:
        aws.client("sqs", get_settings()).send_message(QueueUrl=raw_queue(), MessageBody=body)


def s3_event(bucket: str, key: str) -> str:
    return json.dumps(
        {
            "Records": [
                {
                    "eventSource": "aws:s3",
                    "eventName": "ObjectCreated:Put",
                    "s3": {"bucket": {"name": bucket}, "object": {"key": key.replace(" ", "+")}},
                }
            ]
        }
    )


def sns(message: str, kind: str = "Notification") -> str:
    return json.dumps({"Type": kind, "MessageId": "x", "Message": message})


def cloudtrail_sns(bucket: str, *keys: str) -> str:
    return sns(json.dumps({"s3Bucket": bucket, "s3ObjectKey": list(keys)}))


def audit(kopter: Kopter, tenant: str, *filters: str) -> list[dict]:
    return kopter.rows("audit", "--tenant", tenant, "--limit", "100000", *filters)


def marker(kind: str, bucket: str, key: str) -> dict | None:
    try:
        return GlobalItem.get(f"{kind}#s3://{bucket}/{key}", consistent_read=True).value
    except GlobalItem.DoesNotExist:
        return None
