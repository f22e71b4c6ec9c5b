"""Real `celery worker` processes on SQS (moto's server) with Redis results: the settings that
make SQS safe, shown working rather than configured."""

from __future__ import annotations

import base64
import json
import secrets
import socket
from datetime import UTC, datetime, timedelta

import pytest
import redis

from kopter import aws, queues
from kopter.settings import get_settings
from tests.conftest import wait_for

pytestmark = pytest.mark.long


@pytest.fixture
def r() -> redis.Redis:
    return redis.Redis.from_url(get_settings().redis_url)


def test_task_goes_through_sqs_and_its_result_comes_back(kopter, workers):
    c = kopter.connect()
    # The check tries every permission of the role: past the suite's 4 s at load average 8.
    long = {"KOPTER_TASK_TIME_LIMIT": "60"}
    worker = workers.start("describer", "describer", env=long)
    workers.wait_ready(worker)
    check = ["accounts", "check", "--tenant", c.tenant, "--account-id", c.account, "--on-worker"]
    rows = kopter.rows(*check, env=long)
    assert [row["name"] for row in rows][:2] == ["assume-role", "DescribeInstances:us-east-1"]
    assert all(row["ok"] for row in rows)
    assert "tasks.describer.check_account" in worker.tail(50)


def test_worker_killed_mid_task_leaves_the_task_to_another_worker(workers, r):
    from tests.support.harness import slow

    key = f"slow:{secrets.token_hex(4)}"
    first = workers.start("first", "audit", app="tests.support.harness")
    workers.wait_ready(first)
    # Long enough that the kill lands mid-task however slowly this process gets to it, with
    # time limits of its own (the suite's 4 s would end the task, not the kill).
    result = slow.apply_async(
        (key, get_settings().visibility_timeout), queue="audit", time_limit=60, soft_time_limit=55
    )
    wait_for(lambda: r.llen(key) == 1, 30, "the first worker to start the task")
    first.kill()  # SIGKILL, the worker and its pool children: nothing gets acknowledged
    second = workers.start("second", "audit", app="tests.support.harness")
    # The message comes back once its visibility timeout runs out, and the second worker runs it.
    assert result.get(timeout=90).startswith("second@")
    started = [h.decode() for h in r.lrange(key, 0, -1)]
    finished = [h.decode() for h in r.lrange(f"{key}:done", 0, -1)]
    assert [h.split("@")[0] for h in started] == ["first", "second"]
    assert [h.split("@")[0] for h in finished] == ["second"]
    assert second.alive


def test_task_longer_than_the_visibility_timeout_runs_once(workers, r):
    from tests.support.harness import slow

    key = f"long:{secrets.token_hex(4)}"
    # Two pool processes: without the keeper, the second would receive the message again.
    worker = workers.start("long", "audit", app="tests.support.harness")
    workers.wait_ready(worker)
    seconds = 2.5 * get_settings().visibility_timeout
    # The sender's limits travel with the message; this test's default is 4 s.
    result = slow.apply_async((key, seconds), queue="audit", time_limit=60, soft_time_limit=55)
    assert result.get(timeout=60).startswith("long@")
    assert r.llen(key) == 1, "the task was started twice"


def test_task_that_keeps_failing_ends_in_its_dlq(workers, r):
    from tests.support.harness import always_fails

    settings = get_settings()
    key = f"fails:{secrets.token_hex(4)}"
    worker = workers.start("failing", "audit", app="tests.support.harness")
    workers.wait_ready(worker)
    result = always_fails.apply_async((key,), queue="audit")
    sqs = aws.client("sqs", get_settings())
    dlq = sqs.get_queue_url(QueueName=queues.dlq_name(settings, "audit"))["QueueUrl"]

    def parked() -> list[dict]:
        found = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10, VisibilityTimeout=0)
        return [m for m in found.get("Messages", []) if result.id in _task_id(m)]

    [message] = wait_for(parked, 60, "the failing task to reach the DLQ")
    # Run once per receive, KOPTER_MAX_RECEIVE_COUNT times, then parked: not lost, not looping.
    assert int(r.get(key)) == settings.max_receive_count
    assert result.state == "FAILURE"
    sqs.delete_message(QueueUrl=dlq, ReceiptHandle=message["ReceiptHandle"])


def test_worker_refuses_queues_that_were_never_bootstrapped(workers):
    worker = workers.start("unbootstrapped", "ingest", env={"KOPTER_PREFIX": "nowhere-"})
    worker.process.wait(timeout=60)
    assert worker.process.returncode != 0
    assert "SQS queue nowhere-ingest does not exist: run `kopter bootstrap`" in worker.tail(50)


def test_countdowns_wait_in_sqs_not_in_the_worker_and_run_once_when_due(workers, r):
    from tests.support.harness import app, slow

    name = f"delays-{secrets.token_hex(3)}"
    node = f"{name}@{socket.gethostname()}"
    worker = workers.start(name, "audit", app="tests.support.harness")
    workers.wait_ready(worker)
    key = f"delays:{secrets.token_hex(4)}"
    settings, sqs = get_settings(), aws.client("sqs", get_settings())
    url = sqs.get_queue_url(QueueName=queues.sqs_name(settings, "audit"))["QueueUrl"]
    # Four due in 15 s: SQS holds each for its whole countdown. One due in 16 s that SQS was
    # asked to hold for 3 s only, as a wait beyond SQS's 900 s arrives early: the worker sends
    # it back for what remains.
    sent = datetime.now(UTC)
    due = [slow.apply_async((f"{key}:{i}", 0), queue="audit", countdown=15) for i in range(4)]
    early = slow.apply_async((f"{key}:early", 0), queue="audit", countdown=16, delay_seconds=3)
    wait_for(lambda: f"[{early.id}] due in" in worker.tail(200), 30, "the early one sent back")

    held = app.control.inspect(destination=[node], timeout=5).scheduled()
    delayed = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesDelayed"]
    )["Attributes"]["ApproximateNumberOfMessagesDelayed"]
    assert held == {node: []}, held
    assert int(delayed) >= 5, delayed
    assert not r.keys(f"{key}:*")  # none ran early

    for result, countdown in [*((d, 15) for d in due), (early, 16)]:
        result.get(timeout=60)
        done = result.date_done if result.date_done.tzinfo else result.date_done.replace(tzinfo=UTC)
        assert done >= sent + timedelta(seconds=countdown), (done, sent)
    for label in [*(str(i) for i in range(4)), "early"]:
        assert r.lrange(f"{key}:{label}", 0, -1) == [node.encode()], label


def _task_id(message: dict) -> str:
    """The Celery task id inside an SQS message body as kombu writes it (base64 JSON)."""
    body = json.loads(base64.b64decode(message["Body"]))
    return str(body["headers"]["id"])
