"""`kopter bootstrap` and `kopter status` against moto's server."""

import json
import os
import secrets
from datetime import UTC, datetime

import pytest

from kopter import aws, queues
from kopter.bootstrap import bootstrap
from kopter.errors import NotBootstrapped
from kopter.settings import get_settings, load
from kopter.tables import ALL_MODELS, Tenant


def test_bootstrap_made_every_queue_with_a_dlq_and_every_table():
    settings = get_settings()
    sqs = aws.client("sqs", get_settings())
    for queue in queues.ALL_QUEUES:
        url = sqs.get_queue_url(QueueName=queues.sqs_name(settings, queue))["QueueUrl"]
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        policy = json.loads(attributes["RedrivePolicy"])
        assert policy["deadLetterTargetArn"].endswith(":" + queues.dlq_name(settings, queue))
        assert int(policy["maxReceiveCount"]) == settings.max_receive_count
        assert int(attributes["VisibilityTimeout"]) == settings.visibility_timeout
    dynamodb = aws.client("dynamodb", settings)
    for model in ALL_MODELS:
        assert model.exists(), model.Meta.table_name
        backups = dynamodb.describe_continuous_backups(TableName=model.Meta.table_name)
        recovery = backups["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]
        assert recovery["PointInTimeRecoveryStatus"] == "ENABLED", model.Meta.table_name


def test_every_tenant_owned_table_leads_with_the_tenant():
    for model in ALL_MODELS:
        if model.Meta.table_name.endswith(("Ec2Prices", "Global")):
            continue  # not tenant-owned
        schema = model._get_schema()
        key_schemas = [schema["key_schema"]] + [
            index["key_schema"] for index in schema["global_secondary_indexes"]
        ]
        hash_keys = [k["AttributeName"] for ks in key_schemas for k in ks if k["KeyType"] == "HASH"]
        assert all(k.startswith("tenant") for k in hash_keys), (model, hash_keys)


def test_second_run_changes_nothing_and_drift_is_repaired(kopter):
    # Accounts registered by earlier tests through the domain, not `kopter accounts add`, left
    # the raw queue's policy behind: the first run writes it.
    kopter("bootstrap")
    second = kopter("bootstrap")
    assert "nothing to change" in second.stdout
    settings = get_settings()
    sqs = aws.client("sqs", get_settings())
    url = sqs.get_queue_url(QueueName=queues.sqs_name(settings, "pricing"))["QueueUrl"]
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "30"})
    table = Tenant.Meta.table_name
    aws.client("dynamodb", settings).update_continuous_backups(
        TableName=table,
        PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": False},
    )
    changes = {(c.name, c.action, c.detail) for c in bootstrap(settings)}
    assert (queues.sqs_name(settings, "pricing"), "updated", "VisibilityTimeout") in changes
    assert (table, "updated", "point-in-time recovery enabled") in changes
    assert "nothing to change" in kopter("bootstrap").stdout


def test_queues_of_another_prefix_are_refused_until_bootstrapped():
    other = load({**os.environ, "KOPTER_PREFIX": "never-bootstrapped-"})
    with pytest.raises(NotBootstrapped, match="kopter bootstrap"):
        queues.verify_queues(other, ["ingest"])


def test_status_reports_depths_and_cloudwatch_age(kopter):
    # A deployment of its own: other tests' workers leave the suite's queues as they leave them,
    # so the depths here are this test's alone.
    env = {"KOPTER_PREFIX": f"kt{secrets.token_hex(3)}s-"}
    settings = load({**os.environ, **env})
    queues.ensure_queues(settings)  # its queues are all `kopter status` reads
    sqs = aws.client("sqs", settings)
    url = sqs.get_queue_url(QueueName=queues.sqs_name(settings, "backup"))["QueueUrl"]
    dlq = sqs.get_queue_url(QueueName=queues.dlq_name(settings, "backup"))["QueueUrl"]
    for i in range(3):
        sqs.send_message(QueueUrl=url, MessageBody=f"m{i}")
    sqs.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=600)
    sqs.send_message(QueueUrl=dlq, MessageBody="parked")
    # One received and not deleted, as a worker holds a running task's message.
    sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, VisibilityTimeout=600)
    # AWS publishes this metric itself; here the test plays AWS's part.
    aws.client("cloudwatch", settings).put_metric_data(
        Namespace="AWS/SQS",
        MetricData=[
            {
                "MetricName": "ApproximateAgeOfOldestMessage",
                "Dimensions": [{"Name": "QueueName", "Value": queues.sqs_name(settings, "backup")}],
                "Timestamp": datetime.now(UTC),
                "Value": 42.0,
                "Unit": "Seconds",
            }
        ],
    )
    lines = kopter("status", "--json", env=env).stdout.splitlines()
    rows = [row for row in map(json.loads, lines) if "queue" in row]  # then beat, workers
    backup = next(r for r in rows if r["queue"] == "backup")
    assert backup["visible"] == 2
    assert backup["delayed"] == 1
    assert backup["in_flight"] == 1
    assert backup["dlq_visible"] == 1
    assert backup["oldest_age_seconds"] == 42.0
    assert {r["queue"] for r in rows} == set(queues.ALL_QUEUES)
    depths = ("visible", "delayed", "in_flight", "dlq_visible")
    for row in rows:  # each queue's own depths
        assert row["queue"] == "backup" or not any(row[d] for d in depths), row
    table = kopter("status", env=env).stdout
    assert "42s" in table and "cloudtrail-notifications" in table
