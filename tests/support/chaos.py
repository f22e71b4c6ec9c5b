"""What the fault tests share: an estate of customer accounts with CloudTrail files and EC2
instances in moto, the counts that say whether anything was lost or doubled, and a monkey that
SIGKILLs worker processes.

Counting never trusts kopter's own summaries: records are looked up by their keys in the audit
log table, events read back from the Ec2Events table, queues and DLQs asked for their depths.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import random
import signal
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import boto3

from kopter import accounts, aws, queues
from kopter.crossaccount import Target, assume_role
from kopter.devstack import Child
from kopter.settings import get_settings
from kopter.tables import AuditLogEvent, Ec2Event, GlobalItem
from tests.conftest import Workers
from tests.support.factories import log_file, log_key, log_records

REGION = "us-east-1"
IMAGE = "ami-0123456789abcdef0"


@dataclass
class Account:
    account_id: str
    bucket: str
    s3: Any
    ec2: Any
    instances: list[str] = field(default_factory=list)


@dataclass
class Estate:
    """One tenant's accounts, each with its own CloudTrail bucket."""

    tenant: str
    accounts: list[Account]
    files: list[tuple[str, str]] = field(default_factory=list)
    records: list[dict] = field(default_factory=list)

    def add_files(self, files: int, records_per_file: int, day: datetime, seed: int) -> None:
        """``files`` log files spread over the accounts, uploaded to their buckets."""

        def upload(i: int) -> tuple[str, str, list[dict]]:
            account = self.accounts[i % len(self.accounts)]
            records = log_records(records_per_file, account.account_id, day, seed=seed + i)
            key = log_key(account.account_id, REGION, day)
            account.s3.put_object(Bucket=account.bucket, Key=key, Body=log_file(records))
            return account.bucket, key, records

        with ThreadPoolExecutor(4) as pool:
            for bucket, key, records in pool.map(upload, range(files)):
                self.files.append((bucket, key))
                self.records.extend(records)

    def launch(self, per_account: int) -> None:
        def run(account: Account) -> None:
            launched = account.ec2.run_instances(
                ImageId=IMAGE, InstanceType="t3.micro", MinCount=per_account, MaxCount=per_account
            )
            account.instances.extend(i["InstanceId"] for i in launched["Instances"])

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(run, self.accounts))

    @property
    def instances(self) -> list[str]:
        return [i for a in self.accounts for i in a.instances]


def new_estate(name: str, size: int, seed: int) -> Estate:
    """A tenant with ``size`` accounts connected (each with a bucket and a role in moto)."""
    rng = random.Random(seed)
    tenant = accounts.add_tenant(f"{name}-{rng.getrandbits(32):08x}")
    endpoint = get_settings().aws_endpoint_url

    def connect(account_id: str) -> Account:
        bucket = f"{name}-{account_id}"
        row = accounts.add_account(
            tenant,
            accounts.AccountRequest(
                account_id, f"arn:aws:iam::{account_id}:role/kopter", (REGION,), bucket
            ),
        )
        credentials = assume_role(Target(account_id, row.role_arn, row.external_id), get_settings())
        session = boto3.session.Session(
            aws_access_key_id=credentials["access_key"],
            aws_secret_access_key=credentials["secret_key"],
            aws_session_token=credentials["token"],
            region_name=REGION,
        )
        s3 = session.client("s3", endpoint_url=endpoint)
        s3.create_bucket(Bucket=bucket)
        return Account(account_id, bucket, s3, session.client("ec2", endpoint_url=endpoint))

    ids = ["".join(rng.choice("0123456789") for _ in range(12)) for _ in range(size)]
    with ThreadPoolExecutor(4) as pool:
        connected = list(pool.map(connect, ids))
    return Estate(tenant.tenant_id, connected)


# --- driving it ---------------------------------------------------------------------------------


def _url(name: str, dlq: bool = False) -> str:
    """The URL of kopter's queue ``name`` (or of its DLQ)."""
    queue = (queues.dlq_name if dlq else queues.sqs_name)(get_settings(), name)
    return str(aws.client("sqs", get_settings()).get_queue_url(QueueName=queue)["QueueUrl"])


def s3_notification(bucket: str, key: str) -> str:
    """What S3 sends to SQS when CloudTrail delivers a file."""
    record = {
        "eventSource": "aws:s3",
        "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": bucket}, "object": {"key": key}},
    }
    return json.dumps({"Records": [record]})


def notify(bodies: Iterable[str]) -> None:
    sqs, url = aws.client("sqs", get_settings()), _url("cloudtrail-notifications")
    pending = list(bodies)
    for start in range(0, len(pending), 10):
        entries = [
            {"Id": str(i), "MessageBody": body}
            for i, body in enumerate(pending[start : start + 10])
        ]
        assert not sqs.send_message_batch(QueueUrl=url, Entries=entries).get("Failed")


# --- counting -----------------------------------------------------------------------------------


def ingested(files: list[tuple[str, str]]) -> set[tuple[str, str]]:
    """The files whose `ingested#` marker is written: the last thing an ingest does."""
    found = _existing(
        GlobalItem.Meta.table_name,
        [{"key": {"S": f"ingested#s3://{b}/{k}"}} for b, k in files],
        "key",
    )
    return {(b, k) for b, k in files if f"ingested#s3://{b}/{k}" in found}


def audit_key(tenant: str, record: dict) -> dict[str, dict[str, str]]:
    """The audit log item's key of a CloudTrail record, as DynamoDB's API takes it."""
    event_key = AuditLogEvent.sort_key(record["eventTime"], record["eventID"])
    return {"tenant_id": {"S": tenant}, "event_key": {"S": event_key}}


def missing_records(tenant: str, records: list[dict]) -> list[str]:
    keys = [audit_key(tenant, r) for r in records]
    found = _existing(AuditLogEvent.Meta.table_name, keys, "event_key")
    return [
        r["eventID"] for r, k in zip(records, keys, strict=True) if k["event_key"]["S"] not in found
    ]


def audit_log_items() -> int:
    """Items in the audit log table. moto keeps ItemCount exact at every moment (AWS refreshes it
    every six hours), and a Query counting 50,000 items costs moto minutes: the tests count
    what a run added as the difference, with no other writer of the table running."""
    table = aws.client("dynamodb", get_settings()).describe_table(
        TableName=AuditLogEvent.Meta.table_name
    )
    return int(table["Table"]["ItemCount"])


def events(tenant: str) -> list[tuple[str, str]]:
    """(instance, kind) of every Ec2Event item of the tenant, duplicates kept."""
    return [(e.instance_id, e.kind) for e in Ec2Event.query(tenant)]


def forget(tenant: str, records: list[dict]) -> None:
    """Delete the tenant's audit log items of ``records`` once a test has counted them. moto
    reads every item of a table for each Query: the tens of thousands a fault test leaves would
    slow every later audit read on this stack (a test of 8 s took 182 s after them)."""
    table = AuditLogEvent.Meta.table_name

    def delete(chunk: list[dict]) -> None:
        dynamodb = aws.client("dynamodb", get_settings())
        pending: dict[str, Any] = {
            table: [{"DeleteRequest": {"Key": audit_key(tenant, r)}} for r in chunk]
        }
        while pending:
            pending = dynamodb.batch_write_item(RequestItems=pending).get("UnprocessedItems")

    chunks = [records[i : i + 25] for i in range(0, len(records), 25)]
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(delete, chunks))


def _existing(table: str, keys: list[dict], attribute: str) -> set[str]:
    """The values of ``attribute`` of the items that exist among ``keys`` (BatchGetItem, in
    parallel: moto answers a large Query slowly)."""

    def batch(chunk: list[dict]) -> set[str]:
        dynamodb = aws.client("dynamodb", get_settings())
        found: set[str] = set()
        pending: dict[str, Any] = {
            table: {
                "Keys": chunk,
                "ProjectionExpression": "#a",
                "ExpressionAttributeNames": {"#a": attribute},
            }
        }
        while pending:
            response = dynamodb.batch_get_item(RequestItems=pending)
            found.update(i[attribute]["S"] for i in response["Responses"].get(table, []))
            pending = response.get("UnprocessedKeys") or {}
        return found

    chunks = [keys[i : i + 100] for i in range(0, len(keys), 100)]
    with ThreadPoolExecutor(4) as pool:
        return set().union(*pool.map(batch, chunks)) if chunks else set()


def depths(names: Iterable[str], dlq: bool = False) -> dict[str, int]:
    """Messages in each queue (or its DLQ), visible and in flight."""
    sqs = aws.client("sqs", get_settings())
    out = {}
    for name in names:
        attributes = sqs.get_queue_attributes(
            QueueUrl=_url(name, dlq),
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        out[name] = sum(int(v) for v in attributes.values())
    return out


def delayed(name: str) -> int:
    """Messages of the queue that SQS holds until their DelaySeconds have passed (moto counts
    them exactly)."""
    attributes = aws.client("sqs", get_settings()).get_queue_attributes(
        QueueUrl=_url(name), AttributeNames=["ApproximateNumberOfMessagesDelayed"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessagesDelayed"])


def set_max_receive_count(names: Iterable[str], count: int) -> None:
    """Change the queues' redrive policy (the suite's default of 2 suits tests of the DLQ; a
    run with workers killed needs production's allowance for redeliveries)."""
    sqs = aws.client("sqs", get_settings())
    for name in names:
        url = _url(name)
        policy = json.loads(
            sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["RedrivePolicy"])["Attributes"][
                "RedrivePolicy"
            ]
        )
        policy["maxReceiveCount"] = count
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"RedrivePolicy": json.dumps(policy)})


def set_visibility_timeout(names: Iterable[str], seconds: int) -> None:
    """Change the queues' visibility timeout (the suite's 6 s makes redelivery happen within a
    test; production's 30 minutes shows what a worker gives back itself)."""
    sqs = aws.client("sqs", get_settings())
    for name in names:
        sqs.set_queue_attributes(
            QueueUrl=_url(name), Attributes={"VisibilityTimeout": str(seconds)}
        )


def purge(name: str) -> None:
    aws.client("sqs", get_settings()).purge_queue(QueueUrl=_url(name))


# --- the monkey ---------------------------------------------------------------------------------


def pool_children(worker: Child) -> list[int]:
    """The worker's pool processes (billiard forks replacements from a thread other than the
    main one, so every thread's children are read)."""
    pids: list[int] = []
    for task in glob.glob(f"/proc/{worker.process.pid}/task/*/children"):
        try:
            with open(task) as f:
                pids.extend(int(pid) for pid in f.read().split())
        except OSError:
            pass
    return pids


class Monkey(threading.Thread):
    """Every few seconds (at random, seeded), SIGKILLs a pool child of a live worker or a whole
    worker with its children; a worker killed, or one that exited, is replaced by a new one, as
    an operator's supervisor would."""

    def __init__(
        self,
        workers: Workers,
        start: Callable[[int], Child],
        live: list[Child],
        seed: int,
        every: tuple[float, float] = (2.0, 5.0),
    ) -> None:
        super().__init__(daemon=True)
        self.workers, self.start_worker, self.live = workers, start, live
        self.rng, self.every = random.Random(seed), every
        self.stopped = threading.Event()
        self.child_kills = self.worker_kills = self.exited = 0
        self.errors: list[BaseException] = []

    def run(self) -> None:
        started = len(self.live)
        try:
            while not self.stopped.wait(self.rng.uniform(*self.every)):
                # A worker that exited by itself is replaced too (Celery ends a worker whose
                # pool process dies while the pool is starting: "Could not start worker
                # processes"), as its supervisor would.
                for dead in [w for w in self.live if not w.alive]:
                    self.live.remove(dead)
                    self.live.append(self.start_worker(started))
                    started += 1
                    self.exited += 1
                # Only workers that are up: one still starting has nothing to lose yet.
                up = [w for w in self.live if pool_children(w)]
                if not up:
                    continue
                victim = self.rng.choice(up)
                # Mostly pool children: a whole worker costs seconds of CPU to start again.
                children = pool_children(victim)
                if children and self.rng.random() < 0.8:
                    with contextlib.suppress(ProcessLookupError):  # it died meanwhile
                        os.kill(self.rng.choice(children), signal.SIGKILL)
                        self.child_kills += 1
                    continue
                victim.kill()
                self.worker_kills += 1
                self.live.remove(victim)
                self.live.append(self.start_worker(started))
                started += 1
        except BaseException as e:  # reported by stop(): a silent monkey proves nothing
            self.errors.append(e)

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=60)
        assert not self.errors, self.errors
