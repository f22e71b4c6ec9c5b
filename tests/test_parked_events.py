"""What the consumer parks, Flower shows: each message a worker cannot run (no Celery message,
a body that does not decode, an unknown task) is parked in its DLQ and is a failed task in
Flower, with the reason `kopter dlq show` gives, under the id it lists."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kopter import aws, queues
from kopter.settings import get_settings
from tests.conftest import Kopter, wait_for
from tests.support import drain
from tests.test_flower import AUTH, KOPTER_FLOWER, Flower, _start_flower
from tests.test_poison import UNDECODABLE


@pytest.fixture
def flower() -> Iterator[Flower]:
    yield from _start_flower("flower-parked", KOPTER_FLOWER, {"KOPTER_FLOWER_BASIC_AUTH": AUTH})


def test_every_message_the_consumer_parks_is_a_failure_in_flower(
    kopter: Kopter, workers, flower: Flower
):
    from tasks import app

    settings, sqs = get_settings(), aws.client("sqs", get_settings())
    url = sqs.get_queue_url(QueueName=queues.sqs_name(settings, "ingest"))["QueueUrl"]
    drain.emptied("ingest")  # the test counts what the DLQ holds
    worker = workers.start("parking", "ingest")
    workers.wait_ready(worker)
    sqs.send_message(QueueUrl=url, MessageBody="no Celery message at all")
    sqs.send_message(QueueUrl=url, MessageBody=UNDECODABLE)
    unknown = app.send_task("tasks.ingest.no_such_task", args=("x",), queue="ingest")

    wait_for(lambda: len(kopter.rows("dlq", "show", "ingest")) == 3, 60, "3 parked", 1)
    parked = {
        row["task_id"] or row["message_id"]: row["reason"]
        for row in kopter.rows("dlq", "show", "ingest")
    }
    # Each with its own reason (the two that are no task listed by their SQS message ids).
    assert parked[unknown.id].startswith("unknown task"), parked
    raw = sorted(reason for key, reason in parked.items() if key != unknown.id)
    assert raw[0].startswith("cannot decode the message"), parked
    assert raw[1] == "not a Celery task message", parked

    def failures() -> dict[str, str]:
        return {
            uuid: task["exception"]
            for uuid, task in flower.tasks().items()
            if task["state"] == "FAILURE"
        }

    wait_for(lambda: len(failures()) >= 3, 60, "Flower to show the 3 parked messages", 1)
    assert failures() == parked  # those three, and no other failure
    assert flower.tasks()[unknown.id]["name"] == "tasks.ingest.no_such_task"
    drain.empty("ingest", dlq=True)
