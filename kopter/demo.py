"""The demo customer of `kopter dev`: an account in moto with a small fleet, a CloudTrail bucket
and a log file of what happened there (the launches of that fleet, and a denied call)."""

from __future__ import annotations

import gzip
import json
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import boto3

from kopter import aws, queues, times
from kopter.crossaccount import Target, assume_role
from kopter.settings import Settings

TENANT = "demo"
ACCOUNT = "111111111111"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/kopter-demo"
REGIONS = ("us-east-1", "eu-west-1")
BUCKET = "kopter-demo-cloudtrail"
FLEET = {
    "us-east-1": [("t3.micro", "web"), ("t3.micro", "web"), ("m5.large", "api")],
    "eu-west-1": [("c5.xlarge", "batch")],
}
ALICE = f"arn:aws:iam::{ACCOUNT}:user/alice"
BOB = f"arn:aws:iam::{ACCOUNT}:user/bob"


@dataclass(frozen=True)
class DemoTrail:
    instances: list[tuple[str, str, str]]  # (region, instance id, type)
    key: str
    records: int


def seed(settings: Settings, external_id: str) -> DemoTrail:
    """Launch the fleet (once), create the bucket and put a CloudTrail log file in it."""
    session = _customer_session(settings, external_id)
    instances = []
    for region, fleet in FLEET.items():
        ec2 = session.client("ec2", region_name=region, endpoint_url=settings.aws_endpoint_url)
        existing = [i for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]]
        if not existing:
            for instance_type, role in fleet:
                existing += ec2.run_instances(
                    ImageId="ami-0123456789abcdef0",
                    InstanceType=instance_type,
                    MinCount=1,
                    MaxCount=1,
                    TagSpecifications=[
                        {
                            "ResourceType": "instance",
                            "Tags": [
                                {"Key": "role", "Value": role},
                                {"Key": "kopter:backup", "Value": "7d"},
                            ],
                        }
                    ],
                )["Instances"]
        instances += [(region, i["InstanceId"], i["InstanceType"]) for i in existing]
    now = datetime.now(UTC)
    records = [_run_instances(region, iid, itype, now) for region, iid, itype in instances]
    records.append(_denied_delete_trail(now))
    key = (
        f"AWSLogs/{ACCOUNT}/CloudTrail/us-east-1/{now:%Y/%m/%d}/"
        f"{ACCOUNT}_CloudTrail_us-east-1_{now:%Y%m%dT%H%M}Z_{secrets.token_hex(8)}.json.gz"
    )
    s3 = session.client("s3", region_name="us-east-1", endpoint_url=settings.aws_endpoint_url)
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(
        Bucket=BUCKET, Key=key, Body=gzip.compress(json.dumps({"Records": records}).encode())
    )
    return DemoTrail(instances, key, len(records))


def notify(settings: Settings, trail: DemoTrail) -> None:
    """What S3 sends when CloudTrail writes the file: an event notification, key URL-encoded."""
    sqs = aws.client("sqs", settings)
    url = sqs.get_queue_url(QueueName=queues.sqs_name(settings, "cloudtrail-notifications"))
    event = {
        "Records": [
            {
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": BUCKET}, "object": {"key": trail.key}},
            }
        ]
    }
    sqs.send_message(QueueUrl=url["QueueUrl"], MessageBody=json.dumps(event))


def _customer_session(settings: Settings, external_id: str) -> boto3.session.Session:
    """The demo customer's own credentials in moto, as if they worked in their account."""
    credentials = assume_role(Target(ACCOUNT, ROLE, external_id), settings)
    return boto3.session.Session(
        aws_access_key_id=credentials["access_key"],
        aws_secret_access_key=credentials["secret_key"],
        aws_session_token=credentials["token"],
    )


def _base(name: str, source: str, user: str, region: str, when: datetime) -> dict:
    return {
        "eventVersion": "1.11",
        "userIdentity": {"type": "IAMUser", "arn": user, "accountId": ACCOUNT},
        "eventTime": times.stamp(when),
        "eventSource": source,
        "eventName": name,
        "awsRegion": region,
        "sourceIPAddress": "203.0.113.10",
        "userAgent": "aws-cli/2.15.0",
        "eventID": str(uuid.uuid4()),
        "readOnly": False,
        "eventType": "AwsApiCall",
        "recipientAccountId": ACCOUNT,
    }


def _run_instances(region: str, instance_id: str, instance_type: str, when: datetime) -> dict:
    record = _base("RunInstances", "ec2.amazonaws.com", ALICE, region, when)
    record["requestParameters"] = {"instanceType": instance_type, "minCount": 1, "maxCount": 1}
    record["responseElements"] = {
        "instancesSet": {"items": [{"instanceId": instance_id, "instanceType": instance_type}]}
    }
    return record


def _denied_delete_trail(when: datetime) -> dict:
    record = _base("DeleteTrail", "cloudtrail.amazonaws.com", BOB, "us-east-1", when)
    record["requestParameters"] = {"name": "org-trail"}
    record["errorCode"] = "AccessDenied"
    record["errorMessage"] = f"User: {BOB} is not authorized to perform: cloudtrail:DeleteTrail"
    return record
