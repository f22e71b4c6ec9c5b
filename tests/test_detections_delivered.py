"""Issue 24's end to end: a StopLogging in a log file a customer's trail delivered reaches the
customer's webhook, signed, within a minute, and once. The log file is put in the customer's
bucket in moto's S3 and announced on the raw queue as S3 announces it; a real worker consumes
every work queue (the bridge, ingest and its detections, notifications, deliveries, the audit);
the webhook is a real HTTP server on 127.0.0.1.

The first test needs the detections at ingest (issue 24's d24-detect part): until they are
merged, no notification is raised at ingest, and it fails waiting. The second goes through what
kopter raised before them, the daily audit's finding of the same record.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime

import pytest

from kopter.queues import WORK_QUEUES
from tests.conftest import customer_client, new_account_id, wait_for
from tests.support.factories import log_file, log_key
from tests.support.receiver import Receiver
from tests.support.samples import STRATUS_DIR
from tests.support.trails import notify, s3_event

pytestmark = pytest.mark.long

AUDIT = "audit-finding"
DELIVERY_BOUND = 60  # seconds from S3's notification to the webhook's POST: the issue's bound


def stop_logging(account: str) -> dict:
    """Stratus Red Team's real StopLogging record, as the customer's account's, with a new id."""
    [record] = json.loads((STRATUS_DIR / "aws.defense-evasion.cloudtrail-stop.json").read_text())
    return {**record, "eventID": str(uuid.uuid4()), "recipientAccountId": account}


def deliver_log(kopter, workers, receiver: Receiver) -> tuple[str, dict, dict, float]:
    """A tenant with a webhook to ``receiver``, a worker on every queue, and a log file holding a
    StopLogging delivered and announced: (tenant, the channel, the record, when announced)."""
    bucket = f"trail-{new_account_id()}"
    c = kopter.connect("--cloudtrail-bucket", bucket)
    local = {"KOPTER_CHANNELS_ALLOW_PRIVATE": "true"}  # the receiver is on 127.0.0.1
    [hook] = kopter.rows(
        "channels", "add", "--tenant", c.tenant, "--webhook", receiver.url("/siem"), env=local
    )
    worker = workers.start("everything", ",".join(WORK_QUEUES), env=local)
    workers.wait_ready(worker)
    record = stop_logging(c.account)
    s3 = customer_client(c, "s3")
    s3.create_bucket(Bucket=bucket)
    key = log_key(c.account, "us-east-1", datetime.now(UTC))
    s3.put_object(Bucket=bucket, Key=key, Body=log_file([record]))
    announced = time.time()
    notify(s3_event(bucket, key))
    return c.tenant, hook, record, announced


def about(received, record: dict) -> bool:
    return record["eventID"] in received.body.decode()


def test_a_stop_logging_reaches_the_webhook_signed_within_a_minute_and_once(kopter, workers):
    with Receiver() as receiver:
        _, hook, record, announced = deliver_log(kopter, workers, receiver)
        first = receiver.wait("/siem", 1, DELIVERY_BOUND)[0]
        assert first.at - announced < DELIVERY_BOUND
        assert first.signed_with(hook["secret"])
        payload = json.loads(first.body)
        assert payload["kind"] == "finding" and about(first, record), payload
        assert "StopLogging" in json.dumps(payload["detail"])
        time.sleep(15)  # a second POST of it would have come by now (a redelivery, two paths)
        assert [r for r in receiver.on("/siem") if about(r, record)] == [first]


def test_the_days_audit_finding_of_it_reaches_the_webhook_too(kopter, workers):
    with Receiver() as receiver:
        tenant, hook, record, _ = deliver_log(kopter, workers, receiver)
        day = record["eventTime"][:10]

        def ingested() -> bool:
            rows = kopter.rows("audit", "--tenant", tenant, "--event-name", "StopLogging")
            return [r["event_id"] for r in rows] == [record["eventID"]]

        wait_for(ingested, 60, "the StopLogging record in the audit log")
        kopter("run", "audit", "--tenant", tenant, "--date", day, "--wait")

        def audit_findings() -> list:
            return [r for r in receiver.on("/siem") if json.loads(r.body)["kind"] == AUDIT]

        [got] = wait_for(audit_findings, 60, "the audit's finding at the webhook")  # type: ignore
        payload = json.loads(got.body)
        assert got.signed_with(hook["secret"]) and payload["severity"] == "critical"
        assert payload["title"].startswith("CloudTrail logging stopped or a trail deleted")
        time.sleep(5)
        assert audit_findings() == [got]
