"""The demo customer of `kopter dev`: an account in moto with a small fleet, and a CloudTrail
bucket holding the last days of its story, so that `make run` opens on kopter at work.

The story, in hours before the hour the stack starts in: three days ago alice launched two web
servers and a batch server; 20 hours ago she launched an API server; 9 hours ago she stopped
web-2, made it an m5.large and started it again; 6 hours ago bob ran eight c5.xlarge for 44
minutes (the hour costs several times what it did the day before: a cost jump), then opened a
security group to the internet and tried to delete the trail (two findings of the daily audit);
3 hours ago alice stopped the batch server. kopter's role described the account every hour of
the last day, as its describer does.

moto dates every launch now, so the servers it holds were launched as the stack started: the
story ends there with alice restarting the three running ones, which makes what kopter's
describer reads from moto (their LaunchTime) and what CloudTrail told kopter agree. The records
go through kopter's own ingest (an S3 notification per log file, as S3 sends them); what
DescribeInstances said at each past hour, which no API can be asked for, ``demohistory`` writes.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import secrets
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3

from kopter import aws, queues, times
from kopter.crossaccount import Target, assume_role
from kopter.ec2.instances import InstanceState, describe
from kopter.settings import Settings

TENANT = "demo"
ACCOUNT = "111111111111"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/kopter-demo"
REGIONS = ("us-east-1", "eu-west-1")
BUCKET = "kopter-demo-cloudtrail"
ALICE = f"arn:aws:iam::{ACCOUNT}:user/alice"
BOB = f"arn:aws:iam::{ACCOUNT}:user/bob"
KOPTER = f"arn:aws:sts::{ACCOUNT}:assumed-role/kopter-demo/kopter"
AMI = "ami-0123456789abcdef0"
DESCRIBED_HOURS = 24  # kopter's hourly DescribeInstances calls in the trail
FILE_HOURS = 4


@dataclass(frozen=True)
class Server:
    name: str
    region: str
    role: str


SERVERS = {
    s.name: s
    for s in (
        Server("web-1", "us-east-1", "web"),
        Server("web-2", "us-east-1", "web"),
        Server("api", "us-east-1", "api"),
        Server("batch", "eu-west-1", "batch"),
        *(Server(f"burst-{n}", "eu-west-1", "batch") for n in range(1, 9)),
    )
}
BURST = tuple(name for name in SERVERS if name.startswith("burst-"))


@dataclass(frozen=True)
class Step:
    """One call of the story, ``hours`` before the hour the stack starts in, at ``minute``."""

    hours: int
    minute: int
    user: str
    call: str
    servers: tuple[str, ...] = ()
    instance_type: str | None = None
    region: str = "us-east-1"


STORY = (
    Step(72, 0, ALICE, "RunInstances", ("web-1", "web-2"), "t3.micro"),
    Step(72, 2, ALICE, "RunInstances", ("batch",), "c5.xlarge", "eu-west-1"),
    Step(21, 40, ALICE, "ConsoleLogin"),
    Step(20, 12, ALICE, "RunInstances", ("api",), "m5.large"),
    Step(9, 5, ALICE, "StopInstances", ("web-2",)),
    Step(9, 6, ALICE, "ModifyInstanceAttribute", ("web-2",), "m5.large"),
    Step(9, 7, ALICE, "StartInstances", ("web-2",)),
    Step(6, 8, BOB, "RunInstances", BURST, "c5.xlarge", "eu-west-1"),
    Step(6, 52, BOB, "TerminateInstances", BURST, region="eu-west-1"),
    Step(5, 30, BOB, "AuthorizeSecurityGroupIngress"),
    Step(5, 31, BOB, "DeleteTrail"),
    Step(3, 20, ALICE, "StopInstances", ("batch",), region="eu-west-1"),
)


@dataclass(frozen=True)
class Life:
    """A server as the story left it at some moment."""

    state: str  # running, stopped or terminated
    instance_type: str
    started: datetime  # its last start
    stopped: datetime | None = None


def life_at(name: str, moment: datetime, start_hour: datetime) -> Life | None:
    """What ``name`` was at ``moment`` (None: not launched yet)."""
    life = None
    for step in STORY:
        at = when(step, start_hour)
        if at > moment or name not in step.servers:
            continue
        if step.call == "RunInstances":
            life = Life("running", step.instance_type or "", at)
        elif life and step.call == "StartInstances":
            life = dataclasses.replace(life, state="running", started=at, stopped=None)
        elif life and step.call in ("StopInstances", "TerminateInstances"):
            state = "stopped" if step.call == "StopInstances" else "terminated"
            life = dataclasses.replace(life, state=state, stopped=at)
        elif life and step.call == "ModifyInstanceAttribute":
            life = dataclasses.replace(life, instance_type=step.instance_type or "")
    return life


def when(step: Step, start_hour: datetime) -> datetime:
    return start_hour - timedelta(hours=step.hours, minutes=-step.minute)


@dataclass(frozen=True)
class DemoTrail:
    start_hour: datetime  # the story's times are before it
    fleet: dict[str, InstanceState]  # moto's servers, by name, as DescribeInstances shows them
    keys: list[str]  # the log files in the bucket
    records: int


def seed(settings: Settings, external_id: str) -> DemoTrail:
    """Launch the fleet in moto as the story leaves it, and put the story's CloudTrail log
    files in the bucket."""
    session = _customer_session(settings, external_id)
    start_hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    fleet: dict[str, InstanceState] = {}
    for region in REGIONS:
        ec2 = session.client("ec2", region_name=region, endpoint_url=settings.aws_endpoint_url)
        for name, server in SERVERS.items():
            life = life_at(name, start_hour, start_hour)
            if server.region == region and life and life.state != "terminated":
                _launch(ec2, server, life)
        fleet.update({s.tags["Name"]: s for s in describe(ec2, region) if "Name" in s.tags})
    started = min(s.launch_time or start_hour for s in fleet.values())
    ids = {name: fleet[name].instance_id if name in fleet else _instance_id() for name in SERVERS}
    records = [_record(step, when(step, start_hour), ids) for step in STORY]
    records += _described_hourly(start_hour)
    running = tuple(n for n, s in fleet.items() if s.state == "running")
    restart = (("StopInstances", started - timedelta(minutes=1)), ("StartInstances", started))
    records += [_record(Step(0, 0, ALICE, call, running), at, ids) for call, at in restart]
    s3 = session.client("s3", region_name="us-east-1", endpoint_url=settings.aws_endpoint_url)
    s3.create_bucket(Bucket=BUCKET)
    keys = [_put_log_file(s3, region, hour, batch) for (region, hour), batch in _files(records)]
    return DemoTrail(start_hour, fleet, keys, len(records))


def _launch(ec2: Any, server: Server, life: Life) -> None:
    tags = {"Name": server.name, "role": server.role, "kopter:backup": "7d"}
    [instance] = ec2.run_instances(
        ImageId=AMI,
        InstanceType=life.instance_type,
        MinCount=1,
        MaxCount=1,
        TagSpecifications=[
            {"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}
        ],
    )["Instances"]
    if life.state == "stopped":
        ec2.stop_instances(InstanceIds=[instance["InstanceId"]])


def _instance_id() -> str:
    """An id for a server moto never held (bob's, terminated before the stack started)."""
    return f"i-0{secrets.token_hex(8)}"


def _files(records: list[dict[str, Any]]) -> list[tuple[tuple[str, datetime], list[dict]]]:
    """The records in log files as CloudTrail writes them, a region's to a file of its own, but
    a file for every FILE_HOURS rather than every few minutes: fewer to ingest as the stack
    starts, the same records."""
    by_file: dict[tuple[str, datetime], list[dict]] = defaultdict(list)
    for record in records:
        at = times.parse(record["eventTime"])
        block = at.replace(hour=at.hour - at.hour % FILE_HOURS, minute=0, second=0)
        by_file[(record["awsRegion"], block)].append(record)
    return sorted(by_file.items())


def _put_log_file(s3: Any, region: str, hour: datetime, records: list[dict]) -> str:
    delivered = max(times.parse(r["eventTime"]) for r in records) + timedelta(minutes=5)
    key = (
        f"AWSLogs/{ACCOUNT}/CloudTrail/{region}/{delivered:%Y/%m/%d}/"
        f"{ACCOUNT}_CloudTrail_{region}_{delivered:%Y%m%dT%H%M}Z_{secrets.token_hex(8)}.json.gz"
    )
    body = gzip.compress(json.dumps({"Records": records}).encode())
    s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    return key


def notify(settings: Settings, trail: DemoTrail) -> None:
    """What S3 sends as CloudTrail writes each file: an event notification, key URL-encoded."""
    sqs = aws.client("sqs", settings)
    url = sqs.get_queue_url(QueueName=queues.sqs_name(settings, "cloudtrail-notifications"))
    for key in trail.keys:
        event = {
            "Records": [
                {
                    "eventSource": "aws:s3",
                    "eventName": "ObjectCreated:Put",
                    "s3": {"bucket": {"name": BUCKET}, "object": {"key": key}},
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


def _described_hourly(start_hour: datetime) -> list[dict[str, Any]]:
    """kopter's describer in the customer's trail: DescribeInstances in each region, hourly."""
    identity = {
        "type": "AssumedRole",
        "arn": KOPTER,
        "accountId": ACCOUNT,
        "sessionContext": {"sessionIssuer": {"type": "Role", "arn": ROLE, "accountId": ACCOUNT}},
    }
    calls = []
    for hours in range(DESCRIBED_HOURS, 0, -1):
        for n, region in enumerate(REGIONS):
            at = start_hour - timedelta(hours=hours, seconds=-(4 + n))
            call = _base("DescribeInstances", "ec2.amazonaws.com", KOPTER, region, at)
            call.update(userIdentity=identity, readOnly=True, sourceIPAddress="198.51.100.7")
            call.update(userAgent="Boto3/1.35 kopter", requestParameters={"maxResults": 1000})
            calls.append(call)
    return calls


def _record(step: Step, at: datetime, ids: dict[str, str]) -> dict[str, Any]:
    region = SERVERS[step.servers[0]].region if step.servers else step.region
    source = {"ConsoleLogin": "signin.amazonaws.com", "DeleteTrail": "cloudtrail.amazonaws.com"}
    record = _base(step.call, source.get(step.call, "ec2.amazonaws.com"), step.user, region, at)
    items = [{"instanceId": ids[name]} for name in step.servers]
    if step.call == "RunInstances":
        record["requestParameters"] = {
            "instanceType": step.instance_type,
            "imageId": AMI,
            "minCount": len(items),
            "maxCount": len(items),
        }
        launched = [{**i, "instanceType": step.instance_type} for i in items]
        record["responseElements"] = {"instancesSet": {"items": launched}}
    elif step.call == "ModifyInstanceAttribute":
        record["requestParameters"] = {**items[0], "instanceType": {"value": step.instance_type}}
        record["responseElements"] = {"_return": True}
    elif step.servers:
        record["requestParameters"] = {"instancesSet": {"items": items}}
        record["responseElements"] = {"instancesSet": {"items": items}}
    elif step.call == "ConsoleLogin":
        record.update(eventType="AwsConsoleSignIn", responseElements={"ConsoleLogin": "Success"})
        record["additionalEventData"] = {"MFAUsed": "Yes"}
    elif step.call == "AuthorizeSecurityGroupIngress":
        world = {"ipProtocol": "tcp", "fromPort": 22, "toPort": 22}
        world["ipRanges"] = {"items": [{"cidrIp": "0.0.0.0/0"}]}
        record["requestParameters"] = {"groupId": "sg-0d3m0", "ipPermissions": {"items": [world]}}
        record["responseElements"] = {"_return": True}
    elif step.call == "DeleteTrail":
        record["requestParameters"] = {"name": "org-trail"}
        record["errorCode"] = "AccessDenied"
        record["errorMessage"] = (
            f"User: {step.user} is not authorized to perform: cloudtrail:DeleteTrail"
        )
    return record


def _base(name: str, source: str, user: str, region: str, at: datetime) -> dict[str, Any]:
    return {
        "eventVersion": "1.11",
        "userIdentity": {"type": "IAMUser", "arn": user, "accountId": ACCOUNT},
        "eventTime": times.stamp(at),
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
