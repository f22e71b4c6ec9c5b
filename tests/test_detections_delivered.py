"""Issue 24's end to end: a StopLogging in a log file a customer's trail delivered reaches the
customer's webhook, signed, within a minute, and once. The log file is put in the customer's
bucket in moto's S3 and announced on the raw queue as S3 announces it; a real worker consumes
every work queue (the bridge, ingest and its detections, notifications, deliveries, the audit);
the webhook is a real HTTP server on 127.0.0.1.

The first test goes through the detections at ingest: the record's finding is notified as its
file is written. The second goes through the daily audit, which judges only what counts over a
day (ingest notified the rest as it found it): Stratus Red Team's 20 secrets read by one
principal, whose audit finding reaches the webhook too, once.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from kopter.queues import WORK_QUEUES
from tests.conftest import customer_client, new_account_id, wait_for
from tests.support.factories import log_file, log_key, of_account
from tests.support.receiver import Receiver
from tests.support.samples import STRATUS_DIR
from tests.support.trails import notify, s3_event

pytestmark = pytest.mark.long

AUDIT = "audit-finding"
DELIVERY_BOUND = 60  # seconds from S3's notification to the webhook's POST: the issue's bound


def stratus(name: str, account: str) -> list[dict]:
    """Stratus Red Team's real records of the technique ``name``, as ``account``'s, with new ids."""
    records = of_account(json.loads((STRATUS_DIR / f"aws.{name}.json").read_text()), account)
    return [{**r, "eventID": str(uuid.uuid4())} for r in records]


def deliver_log(
    kopter, workers, receiver: Receiver, records_of: Callable[[str], list[dict]]
) -> tuple[str, dict, list[dict], float]:
    """A tenant with a webhook to ``receiver``, a worker on every queue, and a log file of
    ``records_of`` its account delivered and announced: (tenant, the channel, the records, when
    announced)."""
    bucket = f"trail-{new_account_id()}"
    c = kopter.connect("--cloudtrail-bucket", bucket)
    local = {"KOPTER_CHANNELS_ALLOW_PRIVATE": "true"}  # the receiver is on 127.0.0.1
    [hook] = kopter.rows(
        "channels", "add", "--tenant", c.tenant, "--webhook", receiver.url("/siem"), env=local
    )
    worker = workers.start("everything", ",".join(WORK_QUEUES), env=local)
    workers.wait_ready(worker)
    records = records_of(c.account)
    s3 = customer_client(c, "s3")
    s3.create_bucket(Bucket=bucket)
    key = log_key(c.account, "us-east-1", datetime.now(UTC))
    s3.put_object(Bucket=bucket, Key=key, Body=log_file(records))
    announced = time.time()
    notify(s3_event(bucket, key))
    return c.tenant, hook, records, announced


def about(received, record: dict) -> bool:
    return record["eventID"] in received.body.decode()


def test_a_stop_logging_reaches_the_webhook_signed_within_a_minute_and_once(kopter, workers):
    with Receiver() as receiver:
        stop = "defense-evasion.cloudtrail-stop"
        _, hook, [record], announced = deliver_log(
            kopter, workers, receiver, lambda account: stratus(stop, account)
        )
        first = receiver.wait("/siem", 1, DELIVERY_BOUND)[0]
        assert first.at - announced < DELIVERY_BOUND
        assert first.signed_with(hook["secret"])
        payload = json.loads(first.body)
        assert payload["kind"] == "finding" and about(first, record), payload
        assert "StopLogging" in json.dumps(payload["detail"])
        time.sleep(15)  # a second POST of it would have come by now (a redelivery, two paths)
        assert [r for r in receiver.on("/siem") if about(r, record)] == [first]


def test_the_days_audit_finding_reaches_the_webhook_too(kopter, workers):
    with Receiver() as receiver:
        reads = "credential-access.secretsmanager-retrieve-secrets"
        tenant, hook, records, _ = deliver_log(
            kopter, workers, receiver, lambda account: stratus(reads, account)
        )
        read = sorted(r["eventID"] for r in records if r["eventName"] == "GetSecretValue")
        assert len(read) == 20
        day = records[0]["eventTime"][:10]

        def ingested() -> bool:
            rows = kopter.rows("audit", "--tenant", tenant, "--event-name", "GetSecretValue")
            return sorted(r["event_id"] for r in rows) == read

        wait_for(ingested, 60, "the GetSecretValue records in the audit log")
        kopter("run", "audit", "--tenant", tenant, "--date", day, "--wait")

        def audit_findings() -> list:
            return [r for r in receiver.on("/siem") if json.loads(r.body)["kind"] == AUDIT]

        [got] = wait_for(audit_findings, 60, "the audit's finding at the webhook")  # type: ignore
        payload = json.loads(got.body)
        assert got.signed_with(hook["secret"]) and payload["severity"] == "high"
        assert payload["title"].startswith("10 or more Secrets Manager secrets read by one")
        time.sleep(5)
        assert audit_findings() == [got]
