"""`kopter dlq show` and `redrive`: parked messages, their reasons, and their way back."""

from __future__ import annotations

import json
import secrets

from kopter import aws, queues
from kopter.settings import get_settings
from tests.conftest import wait_for


def _drain(sqs, url: str, ids: set[str]) -> dict[str, dict]:
    """Receive until every message of ``ids`` (task ids or raw bodies) was seen; delete them."""
    found: dict[str, dict] = {}

    def more() -> bool:
        for m in sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
        ).get("Messages", []):
            key = next((i for i in ids if i in m["Body"] or i in _task_id(m)), None)
            if key:
                found[key] = m
                sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        return found.keys() == ids

    wait_for(more, 30, "the messages in " + url)
    return found


def _task_id(message: dict) -> str:
    from kopter.dlq import _celery_envelope

    envelope = _celery_envelope(message["Body"])
    return str(envelope["headers"]["id"]) if envelope else ""


def test_parked_messages_are_shown_with_their_reason_and_redriven(kopter):
    from tests.support.harness import always_fails, app

    settings = get_settings()
    sqs = aws.client("sqs", get_settings())
    url = sqs.get_queue_url(QueueName=queues.sqs_name(settings, "backup"))["QueueUrl"]
    dlq = sqs.get_queue_url(QueueName=queues.dlq_name(settings, "backup"))["QueueUrl"]

    # A Celery task as SQS parks it: its message moved to the DLQ, its failure in Redis.
    key = f"dlq:{secrets.token_hex(4)}"
    task = always_fails.apply_async((key,), queue="backup")
    [celery_message] = _drain(sqs, url, {task.id}).values()
    app.backend.mark_as_failure(task.id, RuntimeError("the account's role was deleted"))
    sqs.send_message(QueueUrl=dlq, MessageBody=celery_message["Body"])
    # A foreign message the bridge parked at once, with its reason.
    raw = json.dumps({"unknown": key})
    sqs.send_message(
        QueueUrl=dlq,
        MessageBody=raw,
        MessageAttributes={"kopter-reason": {"DataType": "String", "StringValue": "no shape"}},
    )

    rows = {r["task_id"] or r["body"]: r for r in kopter.rows("dlq", "show", "backup")}
    assert rows[task.id]["task"] == "tests.support.harness.always_fails"
    assert rows[task.id]["args"] == repr((key,))
    assert rows[task.id]["reason"] == "RuntimeError: the account's role was deleted"
    assert rows[raw]["reason"] == "no shape"
    # Looking leaves them parked, and at once visible again.
    assert {r["task_id"] or r["body"] for r in kopter.rows("dlq", "show", "backup")} >= {
        task.id,
        raw,
    }
    assert "tests.support.harness.always_fails" in kopter("dlq", "show", "backup").stdout

    assert kopter("dlq", "redrive", "backup", "--limit", "1").stdout.startswith("1 messages")
    moved = kopter("dlq", "redrive", "backup").stdout
    assert int(moved.split()[0]) >= 1
    assert not [r for r in kopter.rows("dlq", "show", "backup") if r["task_id"] == task.id]

    back = _drain(sqs, url, {task.id, raw})
    assert back[task.id]["Body"] == celery_message["Body"]
    assert "kopter-reason" not in back[raw].get("MessageAttributes", {})

    assert "unknown queue 'nope'" in kopter("dlq", "show", "nope", ok=False).stderr
