"""kopter's own processes stay within the policies `kopter iam` prints.

Each kind of process runs for real with its own RecordingProxy in front of moto: a worker on
the queues that reach customers and the rest (a describer, backup, audit and aggregator run,
ingest from a notification on the raw queue and from backfill), the `kopter` command line
(bootstrap, registration, checks, every job and listing, inline ingest), the read API (every
route, a notification marked read, a rule added and rules switched, a channel added and
removed), Flower's /metrics and a task sent from its API, and beat firing an entry. Every
request each signed with kopter's own credentials becomes the authorizations AWS would check,
and each must be allowed by that role's policy under iam-simulate; each statement of each
policy must be needed (taken out, a request the process made is refused). Then the denied side:
what no role of kopter's may do, each refused by IAM (an evaluator's error is no refusal).
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import uuid
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime

import httpx
import pytest
import redis

from kopter import aws, demo, queues
from kopter.devstack import free_port, spawn, wait_for_port
from kopter.iam import own
from kopter.notifications import Notice, deliver
from kopter.settings import get_settings
from tests.conftest import (
    MOTO_PORT,
    OUTPUT,
    TEST_ENV,
    Connected,
    customer_client,
    new_account_id,
    wait_for,
)
from tests.support.awscalls import own_authorizations
from tests.support.drain import empty
from tests.support.factories import log_file, log_key, log_records
from tests.support.harness import TICKS
from tests.support.iamsim import Authorization, evaluate, not_denied, unneeded_statements
from tests.support.proxy import RecordingProxy
from tests.support.samples import ROOT

pytestmark = pytest.mark.long

ACCOUNT = TEST_ENV["KOPTER_AWS_ACCOUNT_ID"]
REGION = "us-east-1"
ACCESS_KEY = TEST_ENV["AWS_ACCESS_KEY_ID"]  # kopter's own credentials (moto's account)
WORKER_QUEUES = (
    "ingest",
    "describer",
    "aggregator",
    "audit",
    "backup",
    "notifications",
    "deliveries",
)
SENDER = "alerts@kopter.example"  # the email channels' sender, verified in moto's SES
DAY = datetime(2026, 3, 1, 12, tzinfo=UTC)


def _principal(role: str) -> str:
    return f"arn:aws:sts::{ACCOUNT}:assumed-role/kopter-{role}/session"


def _authorizations(role: str, requests: Iterable) -> list[Authorization]:
    """What IAM authorizes for the requests the role's process made, each kind once (a worker
    polls its queues hundreds of times)."""
    found = own_authorizations(requests, _principal(role), ACCOUNT, REGION, ACCESS_KEY)
    return list({str(a): a for a in found}.values())


def _judge(role: str, requests: Iterable, policy: dict) -> list[Authorization]:
    """Every request the role made is allowed by its policy, and every statement of the policy
    is needed: taken out, some request the role made is refused."""
    wanted = _authorizations(role, requests)
    assert wanted, f"no request of the {role} was recorded"
    decisions = evaluate(wanted, [policy])
    refused = [
        f"{w} -> {d.decision} {d.errors or ''}"
        for w, d in zip(wanted, decisions, strict=True)
        if not d.allowed
    ]
    made = f"the {role} made requests its policy does not allow:\n"
    assert not refused, made + "\n".join(refused)
    # Least privilege: without any one statement, some request the process made is refused.
    assert unneeded_statements(wanted, policy) == [], f"the {role} needs none of these"
    return wanted


def test_a_worker_and_the_command_line_stay_within_their_policies(kopter, workers):
    # The worker publishes notifications to a topic and emails them to a channel: its policy's
    # sns:Publish and ses:SendEmail are proven too.
    topic = aws.client("sns", get_settings()).create_topic(
        Name=f"{get_settings().prefix}iam-{secrets.token_hex(4)}"
    )["TopicArn"]
    aws.client("ses", get_settings()).verify_email_identity(EmailAddress=SENDER)
    settings = replace(get_settings(), notifications_topic_arn=topic, channels_email_from=SENDER)
    bucket = f"trail-{new_account_id()}"
    with RecordingProxy(MOTO_PORT) as worker_proxy, RecordingProxy(MOTO_PORT) as operator_proxy:
        via_worker = {
            "KOPTER_AWS_ENDPOINT_URL": worker_proxy.url,
            "KOPTER_TASK_TIME_LIMIT": "60",
            "KOPTER_NOTIFICATIONS_TOPIC_ARN": topic,
            "KOPTER_CHANNELS_EMAIL_FROM": SENDER,
        }
        as_operator = {
            "KOPTER_AWS_ENDPOINT_URL": operator_proxy.url,
            "KOPTER_CHANNELS_EMAIL_FROM": SENDER,
        }
        worker = workers.start("iam-own", ",".join(WORKER_QUEUES), env=via_worker)
        kopter("bootstrap", env=as_operator)
        tenant = kopter("tenants", "add", f"iam-{new_account_id()}", env=as_operator).stdout.strip()
        account = new_account_id()
        [row] = kopter.rows(
            "accounts", "add", "--tenant", tenant, "--account-id", account,
            "--role-arn", f"arn:aws:iam::{account}:role/kopter",
            "--cloudtrail-bucket", bucket, env=as_operator,
        )  # fmt: skip
        c = Connected(tenant, account, row["external_id"])
        kopter("channels", "add", "--tenant", tenant, "--email", "secops@example.com",
               env=as_operator)  # fmt: skip
        [spare] = kopter.rows("channels", "add", "--tenant", tenant, "--email", "b@example.com",
                              env=as_operator)  # fmt: skip
        kopter("channels", "remove", "--tenant", tenant, spare["id"], env=as_operator)
        s3 = customer_client(c, "s3")
        s3.create_bucket(Bucket=bucket)
        keys = [log_key(account, REGION, DAY) for _ in range(2)]
        # A denied DeleteTrail among the records: ingest raises a finding's notification of it.
        delete_trail = {**demo._denied_delete_trail(DAY), "recipientAccountId": account}
        logs = [[*log_records(2, account, DAY), delete_trail], log_records(2, account, DAY, 1)]
        for key, records in zip(keys, logs, strict=True):
            s3.put_object(Bucket=bucket, Key=key, Body=log_file(records))
        customer_client(c, "ec2").run_instances(
            ImageId="ami-0123456789abcdef0", InstanceType="t3.micro", MinCount=1, MaxCount=1,
            TagSpecifications=[
                {"ResourceType": "instance", "Tags": [{"Key": "kopter:backup", "Value": "true"}]}
            ],
        )  # fmt: skip
        workers.wait_ready(worker)
        as_tenant = ("--tenant", tenant)
        raw = aws.client("sqs", get_settings()).get_queue_url(
            QueueName=queues.sqs_name(settings, "cloudtrail-notifications")
        )["QueueUrl"]
        s3_event = {"bucket": {"name": bucket}, "object": {"key": keys[0]}}
        event = {"Records": [{"eventSource": "aws:s3", "s3": s3_event}]}
        aws.client("sqs", get_settings()).send_message(QueueUrl=raw, MessageBody=json.dumps(event))
        for command in (
            ("accounts", "list", *as_tenant),
            ("accounts", "check", *as_tenant, "--account-id", account),
            ("accounts", "check", *as_tenant, "--account-id", account, "--on-worker"),
            ("run", "describer", *as_tenant, "--wait"),
            ("run", "backup", *as_tenant, "--wait"),
            ("run", "aggregator", *as_tenant, "--wait"),
            ("run", "audit", *as_tenant, "--wait"),
            ("ingest", f"s3://{bucket}/{keys[1]}", *as_tenant),
            ("backfill", *as_tenant, "--account", account, "--since", "2026-03-01",
             "--until", "2026-03-01"),
            ("status",),
            ("dlq", "show", "ingest"),
            ("audit", *as_tenant),
            ("events", *as_tenant),
            ("snapshots", *as_tenant),
            ("notifications", *as_tenant),
            ("channels", "list", *as_tenant),
            ("graph", *as_tenant),
            ("digest", *as_tenant),
        ):  # fmt: skip
            kopter(*command, env=as_operator)
        wait_for(lambda: len(kopter.rows("audit", *as_tenant)) == 5, 60, "both log files ingested")
        kopter("run", "audit", *as_tenant, "--date", "2026-03-01", "--wait", env=as_operator)

        def published() -> bool:
            calls = {a.action for a in _authorizations("worker", worker_proxy.requests)}
            return {"sns:Publish", "ses:SendEmail"} <= calls

        wait_for(published, 120, "the finding's notification published and emailed by the worker")
    notices = kopter.rows("notifications", *as_tenant)
    assert [n["kind"] for n in notices if "DeleteTrail" in n["body"]] == ["finding"], notices
    _judge("worker", worker_proxy.requests, own.worker(settings, WORKER_QUEUES))
    _judge("operator", operator_proxy.requests, own.operator(settings))
    # A worker's policy is for its queues: one on `pricing` alone may not touch `ingest`'s
    # messages nor reach a customer.
    drifted = own_authorizations(
        worker_proxy.requests, _principal("worker"), ACCOUNT, REGION, ACCESS_KEY
    )
    reaching = [
        a
        for a in drifted
        if a.action in ("sts:AssumeRole", "sqs:ReceiveMessage")
        and not a.resource.endswith(("-pricing", "-pricing-dlq"))
    ]
    assert reaching
    assert not_denied(reaching, [own.worker(settings, ["pricing"])]) == []


TENANT_RULE = f"""
title: A trail stopped
id: {uuid.uuid4()}
level: high
logsource: {{product: aws, service: cloudtrail}}
detection:
    selection: {{eventName: StopLogging}}
    condition: selection
"""


def test_the_read_api_flower_and_beat_stay_within_their_policies(kopter, workers):
    settings = get_settings()
    c = kopter.connect()
    deliver(
        Notice(
            tenant_id=c.tenant,
            kind="test",
            subject="iam",
            occurred_at="2026-03-01T12:00:00Z",
            severity="info",
            title="t",
            body="b",
            links={},
        ),
        settings,
    )
    secret = "s" * 40
    api_port, flower_port = free_port(), free_port()
    with (
        RecordingProxy(MOTO_PORT) as api_proxy,
        RecordingProxy(MOTO_PORT) as flower_proxy,
        RecordingProxy(MOTO_PORT) as beat_proxy,
    ):
        env = {
            **os.environ,
            "KOPTER_AWS_ENDPOINT_URL": api_proxy.url,
            "KOPTER_API_AUTH": "gateway",
            "KOPTER_API_GATEWAY_SECRET": secret,
            "KOPTER_API_CURSOR_KEY": "k" * 40,
        }
        argv = [sys.executable, "-m", "kopter", "api", "--port", str(api_port)]
        api = spawn("iam-api", argv, env, OUTPUT / "logs", cwd=ROOT)
        workers.children.append(api)
        wait_for_port(api, api_port)
        headers = {"identityId": c.tenant, "x-kopter-gateway-secret": secret}
        # moto sorts a whole table for every Query: with earlier tests' items in the tables, on a
        # loaded machine, one read took 6.4 s, past httpx's default timeout of 5 s.
        client = httpx.Client(base_url=f"http://127.0.0.1:{api_port}", headers=headers, timeout=60)
        with client:
            for path in (
                "/v1/accounts",
                "/v1/audit/aws",
                "/v1/ec2/events",
                "/v1/price-graph",
                "/v1/snapshots",
                "/v1/prices?region=us-east-1",
            ):
                assert client.get(path).status_code == 200, path
            assert client.get("/v1/digests/2026-03-01").status_code == 404  # read, none made
            [notice] = client.get("/v1/notifications").json()["items"]
            assert client.post(f"/v1/notifications/{notice['id']}/read").status_code == 200
            # The tenant's rules: listed, one of its own added, it and a bundled one switched.
            assert client.get("/v1/rules").status_code == 200
            assert client.get("/v1/findings").status_code == 200
            added = client.post("/v1/rules", json={"yaml": TENANT_RULE})
            assert added.status_code == 200, added.text
            for path in (f"{added.json()['id']}/disable", "cloudtrail-stopped/disable"):
                assert client.post(f"/v1/rules/{path}").status_code == 200, path
            hook = {"kind": "webhook", "target": "https://93.184.216.34/in"}
            added = client.post("/v1/channels", json=hook)
            assert added.status_code == 201, added.text
            assert client.get("/v1/channels").json()["items"] == [added.json()["channel"]]
            channel = added.json()["channel"]["id"]
            assert client.delete(f"/v1/channels/{channel}").status_code == 204
        api.stop()

        env = {**os.environ, "KOPTER_AWS_ENDPOINT_URL": flower_proxy.url}
        argv = [sys.executable, "-m", "kopter", "flower", f"--port={flower_port}", "--no-auth"]
        flower = spawn("iam-flower", argv, env, OUTPUT / "logs", cwd=ROOT)
        workers.children.append(flower)
        wait_for_port(flower, flower_port)
        metrics = httpx.get(f"http://127.0.0.1:{flower_port}/metrics", timeout=60)
        assert "kopter_sqs_messages" in metrics.text
        sent = httpx.post(
            f"http://127.0.0.1:{flower_port}/api/task/async-apply/tasks.audit.run_daily_audit",
            json={"args": [c.tenant, "2026-03-01"]},
            timeout=60,
        )
        assert sent.status_code == 200 and sent.json()["task-id"], sent.text
        flower.stop(timeout=10)
        empty("audit")  # no worker of this test runs it; none of a later test should

        # Beat on the tests' harness app fires a tick every second to `audit`, where a worker
        # of that app (not recorded) runs it.
        r = redis.Redis.from_url(settings.redis_url)
        r.delete(TICKS)
        workers.start("iam-ticker", "audit", app="tests.support.harness")
        env = {**os.environ, "KOPTER_AWS_ENDPOINT_URL": beat_proxy.url}
        argv = [sys.executable, "-m", "celery", "-A", "tests.support.harness", "beat", "-l", "INFO"]
        beat = spawn("iam-beat", argv, env, OUTPUT / "logs", cwd=ROOT)
        workers.children.append(beat)
        wait_for(lambda: r.llen(TICKS) >= 2, 60, "two ticks from beat")
        beat.stop(timeout=10)
    _judge("api", api_proxy.requests, own.api(settings))
    _judge("flower", flower_proxy.requests, own.flower(settings))
    _judge("beat", beat_proxy.requests, own.beat(settings))


def test_what_no_role_of_kopters_may_do(kopter):
    settings = replace(get_settings(), channels_email_from=SENDER)
    prefix = settings.prefix
    table = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/"
    sqs = f"arn:aws:sqs:{REGION}:{ACCOUNT}:"
    never = {
        "api": [
            ("dynamodb:Scan", f"{table}{prefix}AuditLogEvents"),
            ("dynamodb:PutItem", f"{table}{prefix}AuditLogEvents"),
            ("dynamodb:DeleteItem", f"{table}{prefix}FrontendNotifications"),
            ("dynamodb:PutItem", f"{table}{prefix}Findings"),
            ("dynamodb:DeleteItem", f"{table}{prefix}DetectionRules"),
            ("dynamodb:GetItem", f"{table}{prefix}Global"),
            ("dynamodb:Query", f"{table}another-deployment-AuditLogEvents"),
            ("sts:AssumeRole", "arn:aws:iam::111111111111:role/kopter"),
            ("sqs:SendMessage", f"{sqs}{prefix}ingest"),
        ],
        "beat": [
            ("sqs:ReceiveMessage", f"{sqs}{prefix}ingest"),
            ("dynamodb:GetItem", f"{table}{prefix}AwsAccounts"),
            ("sts:AssumeRole", "arn:aws:iam::111111111111:role/kopter"),
        ],
        "flower": [
            ("sqs:ReceiveMessage", f"{sqs}{prefix}ingest"),
            ("sqs:DeleteMessage", f"{sqs}{prefix}ingest-dlq"),
            ("dynamodb:Query", f"{table}{prefix}AuditLogEvents"),
        ],
        "worker": [
            ("dynamodb:DeleteTable", f"{table}{prefix}AuditLogEvents"),
            ("ses:SendEmail", f"arn:aws:ses:{REGION}:{ACCOUNT}:identity/mallory@evil.example"),
            ("ses:SendEmail", f"arn:aws:ses:{REGION}:{ACCOUNT}:identity/evil.example"),
            ("dynamodb:CreateTable", f"{table}{prefix}Tenants"),
            ("sqs:SetQueueAttributes", f"{sqs}{prefix}ingest"),
            ("sqs:ReceiveMessage", f"{sqs}another-deployment-ingest"),
            ("dynamodb:Scan", f"{table}another-deployment-AuditLogEvents"),
            ("sts:AssumeRole", "arn:aws:iam::111111111111:role/admin"),
            ("sts:AssumeRole", f"arn:aws:iam::{ACCOUNT}:role/kopter-operator"),
        ],
        "operator": [
            ("dynamodb:DeleteTable", f"{table}{prefix}AuditLogEvents"),
            ("sqs:DeleteQueue", f"{sqs}{prefix}ingest"),
            ("sts:AssumeRole", "arn:aws:iam::111111111111:role/admin"),
        ],
    }
    for role, attempts in never.items():
        requests = [Authorization(_principal(role), a, r, ACCOUNT) for a, r in attempts]
        let_through = not_denied(requests, [own.policy(settings, role)])
        assert not let_through, f"the {role} is not refused:\n" + "\n".join(let_through)
