"""Poison: one message in twenty is garbage or makes its task fail every time. Exactly those end
in a DLQ with their reason, the other 95 go through, and `kopter dlq redrive` brings the ones
whose cause was fixed back through the real path.
"""

from __future__ import annotations

import ast
import base64
import json
import time
from datetime import UTC, datetime

import pytest

from kopter import aws, queues
from kopter.settings import get_settings
from tests.conftest import MOTO_PORT, Kopter, wait_for
from tests.support import chaos, drain
from tests.support.faultproxy import FaultProxy
from tests.support.reliability import record

# The error S3 gives for an object in Glacier until it is restored: kopter cannot read it yet,
# and no retry will change that.
ARCHIVED = (
    403,
    "application/xml",
    b"<Error><Code>InvalidObjectState</Code><Message>The operation is not valid for the "
    b"object's storage class</Message></Error>",
)


# A kombu envelope as another producer might send it: no task header, a body that says it is
# JSON and is not.
UNDECODABLE = base64.b64encode(
    json.dumps(
        {
            "body": base64.b64encode(b"{not json").decode(),
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": {},
            "properties": {
                "body_encoding": "base64",
                "delivery_info": {"exchange": "ingest", "routing_key": "ingest"},
                "delivery_mode": 2,
                "delivery_tag": "poison",
                "priority": 0,
            },
        }
    ).encode()
).decode()


def _parked(kopter: Kopter, queue: str) -> list[dict]:
    return kopter.rows("dlq", "show", queue)


def _what(row: dict) -> str:
    """A parked message by its task, or its body when it is no kombu envelope."""
    return str(row["task"] or row["body"] or "an envelope")


@pytest.mark.timeout(300)
def test_poison_is_parked_with_its_reason_and_the_rest_goes_through(kopter: Kopter, workers):
    from tasks import app

    estate = chaos.new_estate("poison", 5, seed=33)
    estate.add_files(96, 20, datetime(2026, 3, 6, tzinfo=UTC), seed=33_000)
    archived = estate.files[:1]
    good = estate.files[1:]
    settings, sqs = get_settings(), aws.client("sqs", get_settings())
    ingest_url = sqs.get_queue_url(QueueName=queues.sqs_name(settings, "ingest"))["QueueUrl"]
    # The test counts what its DLQs hold: what earlier modules of this process left goes first.
    for queue in ("ingest", "cloudtrail-notifications"):
        drain.emptied(queue)
    with FaultProxy(MOTO_PORT, {}, seed=1) as proxy:
        proxy.rule = lambda method, path: (
            ARCHIVED if method == "GET" and any(k in path for _, k in archived) else None
        )
        env = {"KOPTER_AWS_ENDPOINT_URL": proxy.url}
        items_before = chaos.audit_log_items()
        started = time.monotonic()
        worker = workers.start("poison", "ingest", env=env)
        workers.wait_ready(worker)
        # 100 messages: 97 notifications (1 of an archived file, 1 garbage), and 3 messages on
        # the ingest queue a worker cannot run: no Celery message, a kombu envelope whose body
        # does not decode, an unknown task.
        chaos.notify([*(chaos.s3_notification(b, k) for b, k in estate.files), "{not json"])
        sqs.send_message(QueueUrl=ingest_url, MessageBody="no Celery message at all")
        sqs.send_message(QueueUrl=ingest_url, MessageBody=UNDECODABLE)
        unknown = app.send_task("tasks.ingest.no_such_task", args=("x",), queue="ingest")

        wait_for(lambda: chaos.ingested(good) == set(good), 120, "the 95 good files", 2)
        wait_for(lambda: len(_parked(kopter, "ingest")) == 4, 120, "4 ingest messages parked", 2)
        raw = _parked(kopter, "cloudtrail-notifications")
        ingest = _parked(kopter, "ingest")
        assert [r["body"] for r in raw] == ["{not json"]
        assert raw[0]["reason"].startswith("not JSON")
        by_what = {_what(r): r for r in ingest}
        assert by_what["no Celery message at all"]["reason"] == "not a Celery task message"
        assert by_what["an envelope"]["reason"].startswith("cannot decode the message")
        assert by_what["tasks.ingest.no_such_task"]["task_id"] == unknown.id
        assert by_what["tasks.ingest.no_such_task"]["reason"].startswith("unknown task")
        failed = [r for r in ingest if r["task"] == "tasks.ingest.ingest_object"]
        assert sorted(ast.literal_eval(r["args"])[1] for r in failed) == sorted(
            k for _, k in archived
        )
        assert all("InvalidObjectState" in r["reason"] for r in failed), failed
        assert chaos.ingested(archived) == set()

        # The objects restored from Glacier: sent back, they go through like the others.
        proxy.rule = None
        listed = [(r["message_id"], _what(r)) for r in _parked(kopter, "ingest")]
        moved = kopter("dlq", "redrive", "ingest").stdout
        assert moved.startswith("4 messages moved"), (moved, listed, proxy.summary())
        wait_for(lambda: chaos.ingested(archived) == set(archived), 60, "the restored files", 2)
        # The garbage comes back to the DLQ: its cause is not fixed.
        wait_for(
            lambda: (
                {_what(r) for r in _parked(kopter, "ingest")}
                == {"no Celery message at all", "an envelope", "tasks.ingest.no_such_task"}
            ),
            60,
            "the garbage parked again",
            2,
        )
        elapsed = time.monotonic() - started
    assert worker.alive and "Unrecoverable error" not in worker.tail(5000)

    lost = chaos.missing_records(estate.tenant, estate.records)
    stored = chaos.audit_log_items() - items_before
    assert lost == [] and stored == len(estate.records), (len(lost), stored)
    for queue in ("ingest", "cloudtrail-notifications"):
        dlq = sqs.get_queue_url(QueueName=queues.dlq_name(settings, queue))["QueueUrl"]
        sqs.purge_queue(QueueUrl=dlq)
    record(
        "Poison: 5 messages in 100 are garbage (a notification, a body that is no Celery message, "
        "one that does not decode, an unknown task) or fail every time (a file S3 cannot serve "
        "until restored); then `kopter dlq redrive ingest`",
        f"100 messages, {len(estate.records):,} records, 1 worker x 2 processes",
        lost=len(lost),
        duplicated=stored - len(estate.records),
        parked_with_reason=5,
        delivered_after_redrive=len(archived),
        seconds=round(elapsed),
    )
