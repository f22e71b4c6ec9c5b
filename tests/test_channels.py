"""Channels end to end: `kopter channels`, and notifications delivered by real workers on the
`notifications` and `deliveries` queues (moto's SQS, Redis) to real HTTP receivers on 127.0.0.1
and to SES in moto: signed, retried, parked with their reason, never held up by another tenant's
slow endpoint, never sent to an address kopter must not call."""

from __future__ import annotations

import itertools
import json
import os
import re
import secrets
import time
from dataclasses import replace
from datetime import UTC, datetime

import httpx
import pytest

from kopter import aws
from kopter.channels import store
from kopter.errors import Refused
from kopter.notifications import Notice
from kopter.settings import get_settings, load
from tests.conftest import MOTO_PORT, OUTPUT, wait_for
from tests.support.receiver import LocalCA, Receiver

pytestmark = pytest.mark.long

SENDER = "alerts@kopter.example"
DELIVER = "tasks.deliveries.deliver"
# What the workers and the `kopter` command of these tests are given: local receivers allowed,
# and attempts short and few enough to run out within a test.
CHANNELS_ENV = {
    "KOPTER_CHANNELS_ALLOW_PRIVATE": "true",
    "KOPTER_CHANNELS_EMAIL_FROM": SENDER,
    "KOPTER_CHANNELS_TIMEOUT": "2",
    "KOPTER_CHANNELS_MAX_ATTEMPTS": "3",
    "KOPTER_CHANNELS_RETRY_SECONDS": "2",
}


def notice(tenant: str, severity: str = "critical", title: str = "CloudTrail logging stopped"):
    return Notice(
        tenant_id=tenant,
        kind="test-finding",
        subject=f"event:{secrets.token_hex(6)}",
        occurred_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        severity=severity,
        title=title,
        body="StopLogging by arn:aws:iam::111111111111:user/mallory",
        links={"account": "111111111111"},
    )


def raise_(n: Notice) -> None:
    from tasks.notifications import raise_notification

    raise_notification(n)


def add(kopter, tenant: str, *options: str, env: dict | None = None) -> dict:
    [row] = kopter.rows("channels", "add", "--tenant", tenant, *options,
                        env={**CHANNELS_ENV, **(env or {})})  # fmt: skip
    return row


def start(workers, name: str, queues: str = "notifications,deliveries", **env: str):
    worker = workers.start(name, queues, env={**CHANNELS_ENV, **env})
    workers.wait_ready(worker)
    return worker


def sent_emails() -> list[dict]:
    """The messages moto's SES took, from its backend's own listing."""
    data = httpx.get(f"http://127.0.0.1:{MOTO_PORT}/moto-api/data.json", timeout=30).json()
    return [m for m in data.get("ses", {}).get("Message", []) if m]


def test_channels_are_added_listed_and_removed_and_bad_ones_refused(kopter):
    tenant = kopter.new_tenant()
    hook = add(kopter, tenant, "--webhook", "http://127.0.0.1:9/hook?token=abc",
               "--min-level", "medium")  # fmt: skip
    assert hook["kind"] == "webhook" and hook["min_level"] == "warning"  # Sigma's medium
    assert len(hook["secret"]) >= 32
    given = add(kopter, tenant, "--webhook", "http://127.0.0.1:9/other",
                "--secret", "a-secret-of-mine-1234")  # fmt: skip
    assert given["secret"] == "a-secret-of-mine-1234"
    # A local stand-in for hooks.slack.com (allowed with private addresses: no DNS here).
    slack = add(kopter, tenant, "--slack", "http://127.0.0.1:9/services/T0/B0/k3y",
                "--min-level", "high")  # fmt: skip
    mail = add(kopter, tenant, "--email", "secops@example.com")
    assert slack["secret"] is None and mail["secret"] is None
    printed = kopter("channels", "add", "--tenant", tenant, "--webhook", "http://127.0.0.1:9/p",
                     env=CHANNELS_ENV).stdout  # fmt: skip
    assert "shown this once" in printed

    listed = kopter.rows("channels", "list", "--tenant", tenant)
    assert [r["id"] for r in listed[:4]] == [hook["id"], given["id"], slack["id"], mail["id"]]
    by_id = {r["id"]: r for r in listed}
    # No secret is listed, nor what works as a key in a URL.
    text = kopter("channels", "list", "--tenant", tenant).stdout + json.dumps(listed)
    for secret in (hook["secret"], given["secret"], "token=abc", "k3y"):
        assert secret not in text
    assert all("secret" not in r for r in listed)
    assert by_id[hook["id"]]["target"] == "http://127.0.0.1:9/hook?…"
    assert by_id[slack["id"]]["target"] == "http://127.0.0.1:9/services/T0/B0/…"
    assert by_id[mail["id"]]["target"] == "secops@example.com"

    # Refused with one line, and nothing stored.
    for options, env, says in [
        (["--webhook", "http://localhost:9/"], {"KOPTER_CHANNELS_ALLOW_PRIVATE": "false"},
         "localhost resolves to 127.0.0.1, a loopback address: kopter calls public addresses"),
        (["--slack", "https://hooks.slack.com/services/T0/B0/x"], {},
         "hooks.slack.com does not resolve"),  # no DNS here: refused, not stored blind
        (["--email", "a@example.com"], {"KOPTER_CHANNELS_EMAIL_FROM": ""},
         "email channels need KOPTER_CHANNELS_EMAIL_FROM"),
        (["--webhook", "http://127.0.0.1:9/", "--email", "a@example.com"], {}, "give one of"),
    ]:  # fmt: skip
        failed = kopter("channels", "add", "--tenant", tenant, *options,
                        env={**CHANNELS_ENV, **env}, ok=False)  # fmt: skip
        assert failed.stderr == f"kopter: error: {says}" + failed.stderr.split(says, 1)[1]
        assert len(failed.stderr.splitlines()) == 1, failed.stderr
    settings = load({**os.environ, **CHANNELS_ENV})
    strict = replace(settings, channels_allow_private=False)
    for kind, target, options, judged_by, says in [
        ("webhook", "http://127.0.0.1:9/", {}, strict, "127.0.0.1 is a loopback address"),
        ("webhook", "http://169.254.169.254/latest/", {}, strict, "a link-local address"),
        ("webhook", "ftp://example.com/", {}, settings, "not an http or https URL"),
        ("slack", "https://example.com/services/x", {}, strict, "an incoming webhook"),
        ("email", "not an address", {}, settings, "is not an email address"),
        ("webhook", "http://127.0.0.1:9/", {"min_level": "urgent"}, settings,
         "level 'urgent' is not one of"),
        ("webhook", "http://127.0.0.1:9/", {"secret": "short"}, settings, "16 to 256"),
        ("email", "a@example.com", {"secret": "a-secret-of-mine-1234"}, settings,
         "email channels have no secret"),
        ("sms", "+15555550100", {}, settings, "kind 'sms' is not one of webhook, slack, email"),
    ]:  # fmt: skip
        with pytest.raises(Refused, match=re.escape(says)):
            store.add(tenant, kind, target, judged_by, **options)
    assert len(kopter.rows("channels", "list", "--tenant", tenant)) == 5

    assert kopter("channels", "remove", "--tenant", tenant, hook["id"]).stdout.strip() == (
        f"channel {hook['id']} removed"
    )
    assert hook["id"] not in {r["id"] for r in kopter.rows("channels", "list", "--tenant", tenant)}
    for gone in (hook["id"], "nope", "0" * 2000):
        failed = kopter("channels", "remove", "--tenant", tenant, gone, ok=False)
        assert failed.stderr.startswith("kopter: error: no channel "), failed.stderr
    # Another tenant neither sees nor removes them.
    other = kopter.new_tenant()
    assert kopter.rows("channels", "list", "--tenant", other) == []
    kopter("channels", "remove", "--tenant", other, given["id"], ok=False)


def test_a_notification_reaches_each_channel_that_wants_it_signed_and_once(kopter, workers):
    aws.client("ses", get_settings()).verify_email_identity(EmailAddress=SENDER)
    tenant = kopter.new_tenant()
    with Receiver() as receiver:
        hook = add(kopter, tenant, "--webhook", receiver.url("/hook"))
        picky = add(kopter, tenant, "--webhook", receiver.url("/picky"), "--min-level", "high")
        add(kopter, tenant, "--slack", receiver.url("/slack"))
        mail = f"secops-{secrets.token_hex(4)}@example.com"
        add(kopter, tenant, "--email", mail)
        start(workers, "channels")

        critical, info = notice(tenant), notice(tenant, "info", "A routine thing")
        raised_at = time.time()
        raise_(critical)
        raise_(critical)  # raised twice (a redelivery, two sources): stored and delivered once
        raise_(info)
        [got] = receiver.wait("/hook", 1, 60)[:1]
        assert got.signed_with(hook["secret"])
        assert not got.signed_with(picky["secret"])
        assert got.headers["content-type"] == "application/json"
        payload = json.loads(got.body)
        assert payload == {
            "id": critical.notification_id,
            **critical.as_message(),
            "timestamp": payload["timestamp"],
        }
        sent = datetime.strptime(payload["timestamp"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        assert raised_at - 1 <= sent.timestamp() <= time.time()
        [slack] = receiver.wait("/slack", 2, 60)[:1]
        assert "X-Kopter-Signature".lower() not in slack.headers
        titles = sorted(json.loads(r.body)["text"] for r in receiver.on("/slack"))
        assert titles == [":information_source: [info] A routine thing",
                          ":red_circle: [critical] CloudTrail logging stopped"]  # fmt: skip
        wait_for(lambda: len([m for m in sent_emails() if mail in json.dumps(m)]) == 2, 60,
                 "two emails")  # fmt: skip
        receiver.wait("/hook", 2, 60)
        # Settle: what was raised is delivered once, to the channels that want it.
        time.sleep(5)
        hooks = receiver.on("/hook")
        assert sorted(json.loads(r.body)["title"] for r in hooks) == [
            "A routine thing",
            "CloudTrail logging stopped",
        ]
        ids = {r.headers["x-kopter-delivery"] for r in hooks}
        assert len(ids) == 2 and all(r.signed_with(hook["secret"]) for r in hooks)
        [high] = receiver.on("/picky")  # min level high: the info one is not for it
        assert high.signed_with(picky["secret"]) and json.loads(high.body)["severity"] == "critical"
        assert high.headers["x-kopter-delivery"] not in ids  # one id per channel
        assert len(receiver.on("/slack")) == 2
    emails = [m for m in sent_emails() if mail in json.dumps(m)]
    assert len(emails) == 2
    assert {e["subject"] for e in emails} == {
        "[kopter] critical: CloudTrail logging stopped",
        "[kopter] info: A routine thing",
    }
    assert all(e["source"] == SENDER for e in emails)
    rows = {r["target"]: r for r in kopter.rows("channels", "list", "--tenant", tenant)}
    assert (
        rows[receiver.url("/hook")]["last_delivered_at"]
        and not rows[receiver.url("/hook")]["last_failure"]
    )


def parked_for(kopter, tenant: str) -> list[dict]:
    """The deliveries of ``tenant``'s notifications parked in the deliveries DLQ."""
    rows = kopter.rows("dlq", "show", "deliveries")
    return [r for r in rows if r["task"] == DELIVER and tenant in (r["args"] or "")]


def test_a_failing_endpoint_is_retried_with_backoff_then_parked_and_redriven(kopter, workers):
    tenant = kopter.new_tenant()
    with Receiver(status=500) as receiver, Receiver(status=302) as moved:
        moved.location = moved.url("/landed")  # a redirect, which kopter does not follow
        hook = add(kopter, tenant, "--webhook", receiver.url("/down"))
        elsewhere = add(kopter, tenant, "--webhook", moved.url("/moved"))
        start(workers, "retries")
        raise_(notice(tenant))
        tries = receiver.wait("/down", 3, 90)
        wait_for(lambda: len(parked_for(kopter, tenant)) == 2, 60, "both deliveries parked")
        parked = parked_for(kopter, tenant)
        assert sorted(p["reason"] for p in parked) == sorted([
            f"webhook channel {hook['id']}, attempt 3: 127.0.0.1 answered 500: nope, not today",
            f"webhook channel {elsewhere['id']}, attempt 3: 127.0.0.1 answered 302 (a redirect, "
            "which kopter does not follow): nope, not today",
        ])  # fmt: skip
        time.sleep(2 * float(CHANNELS_ENV["KOPTER_CHANNELS_RETRY_SECONDS"]) * 2)
        assert len(receiver.on("/down")) == 3  # and no fourth attempt
        assert (len(moved.on("/moved")), moved.on("/landed")) == (3, [])
        # One delivery: the same id on every attempt, each signed, each with its own timestamp,
        # each after the backoff before it (2 s doubled, drawn from its upper half; SQS holds a
        # retry at least that long after the attempt before it failed).
        assert len({t.headers["x-kopter-delivery"] for t in tries}) == 1
        assert all(t.signed_with(hook["secret"]) for t in tries)
        gaps = [b.at - a.at for a, b in itertools.pairwise(tries)]
        assert gaps[0] >= 1 and gaps[1] >= 2, gaps
        rows = {r["id"]: r for r in kopter.rows("channels", "list", "--tenant", tenant)}
        assert rows[hook["id"]]["last_failure"] == "127.0.0.1 answered 500: nope, not today"
        assert rows[hook["id"]]["last_delivered_at"] is None

        # The endpoint is fixed; the operator sends the parked deliveries back: one more attempt.
        receiver.status = 200
        kopter("channels", "remove", "--tenant", tenant, elsewhere["id"])
        kopter("dlq", "redrive", "deliveries")
        fourth = receiver.wait("/down", 4, 60)[3]
        assert fourth.headers["x-kopter-delivery"] == tries[0].headers["x-kopter-delivery"]
        assert fourth.signed_with(hook["secret"])
        wait_for(
            lambda: kopter.rows("channels", "list", "--tenant", tenant)[0]["last_delivered_at"],
            30,
            "the delivery recorded",
        )
        assert parked_for(kopter, tenant) == []  # the removed channel's is dropped, not parked
        assert len(moved.on("/moved")) == 3


def test_a_slow_endpoint_does_not_hold_up_another_tenants_delivery(kopter, workers):
    slow_tenant, other = kopter.new_tenant(), kopter.new_tenant()
    timeout = 10  # an attempt holds a process at least this long when its endpoint hangs
    with Receiver(delay=3 * timeout) as slow, Receiver() as fast:
        hook = add(kopter, slow_tenant, "--webhook", slow.url("/slow"))
        add(kopter, other, "--webhook", fast.url("/fast"))
        # Two processes; each tenant's deliveries may hold one of them.
        start(workers, "slow", KOPTER_CHANNELS_TIMEOUT=str(timeout),
              KOPTER_CHANNELS_TENANT_CONCURRENCY="1")  # fmt: skip
        for i in range(6):
            raise_(notice(slow_tenant, title=f"slow {i}"))
        slow.wait("/slow", 1, 60)
        time.sleep(2)  # the slow tenant's other deliveries reach the worker
        raised = time.time()
        raise_(notice(other))
        [got] = fast.wait("/fast", 1, 60)
        # Sooner than any hanging attempt of the slow tenant could have let a process go.
        assert got.at - raised < timeout, got.at - raised
        assert len(slow.on("/slow")) == 1  # one process at a time for the slow tenant
        kopter("channels", "remove", "--tenant", slow_tenant, hook["id"])  # its retries stop


def test_an_address_kopter_must_not_call_is_refused_at_delivery_too(kopter, workers):
    tenant = kopter.new_tenant()
    with Receiver() as receiver:
        # Added where private addresses are allowed; delivered by a worker where they are not
        # (as if DNS had turned the name to an inside address since).
        hook = add(kopter, tenant, "--webhook", receiver.url("/inside", host="localhost"))
        start(workers, "strict", KOPTER_CHANNELS_ALLOW_PRIVATE="false")
        raise_(notice(tenant))
        [parked] = wait_for(lambda: parked_for(kopter, tenant), 60, "the delivery parked")
        assert parked["reason"] == (  # at once: trying again cannot help
            f"webhook channel {hook['id']}, attempt 1: localhost resolves to 127.0.0.1, a "
            "loopback address: kopter calls public addresses only (KOPTER_CHANNELS_ALLOW_PRIVATE)"
        )
        assert receiver.on("/inside") == []


def test_https_is_checked_against_the_urls_host(kopter, workers):
    ca = LocalCA.make(OUTPUT / f"ca-{secrets.token_hex(4)}")
    tenant = kopter.new_tenant()
    good, wrong = ca.server_context("localhost"), ca.server_context("elsewhere.example")
    with Receiver(tls=good) as receiver, Receiver(tls=wrong) as impostor:
        hook = add(kopter, tenant, "--webhook", receiver.url("/tls", host="localhost"))
        other = add(kopter, tenant, "--webhook", impostor.url("/tls", host="localhost"))
        # The tests' CA is the only one this worker trusts (OpenSSL's SSL_CERT_FILE).
        start(workers, "tls", SSL_CERT_FILE=str(ca.cert_file))
        raise_(notice(tenant))
        [got] = receiver.wait("/tls", 1, 60)
        assert got.signed_with(hook["secret"])
        assert got.headers["host"] == f"localhost:{receiver.port}"
        [parked] = wait_for(lambda: parked_for(kopter, tenant), 60, "the impostor's one parked")
        assert parked["reason"] == (
            f"webhook channel {other['id']}, attempt 3: localhost (127.0.0.1): "
            "hostname 'localhost' doesn't match 'elsewhere.example'"
        )
        assert impostor.on("/tls") == []
