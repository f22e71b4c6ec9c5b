"""The channels' guard: which URLs kopter takes and which addresses it will not call; how a
webhook's body is signed; how a notification reads in Slack and in an email."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
from datetime import UTC, datetime

import pytest

from kopter.channels import guard, messages, signing
from kopter.errors import Refused
from kopter.notifications import Notice, severity_named

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fd12:3456::1", "private"),
        ("169.254.169.254", "link-local"),  # the instance metadata service
        ("fe80::1%eth0", "link-local"),
        ("0.0.0.0", "the unspecified address"),
        ("::", "the unspecified address"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "private"),  # reserved, and private to Python
        ("::127.0.0.1", "reserved"),  # IPv4-compatible, long deprecated
        ("fec0::1", "site-local"),
        ("100.64.0.1", "shared (carrier-grade NAT)"),
        ("192.0.0.8", "IETF protocol"),
        ("2001:db8::1", "private"),  # documentation
        # IPv4 carried in IPv6 is judged as that IPv4 address.
        ("::ffff:127.0.0.1", "carrying 127.0.0.1, a loopback"),
        ("::ffff:169.254.169.254", "carrying 169.254.169.254, a link-local"),
        ("2002:7f00:1::1", "carrying 127.0.0.1, a loopback"),  # 6to4
        ("2002:a9fe:a9fe::1", "carrying 169.254.169.254, a link-local"),  # 6to4
        ("64:ff9b::a9fe:a9fe", "carrying 169.254.169.254, a link-local"),  # NAT64
        ("64:ff9b::a00:1", "carrying 10.0.0.1, a private"),  # NAT64
    ],
)
def test_addresses_kopter_must_not_call(address, kind):
    reason = guard.refusal(address)
    assert reason is not None and kind in reason, reason


@pytest.mark.parametrize(
    "address",
    [
        "93.184.216.34",
        "8.8.8.8",
        "2001:4860:4860::8888",
        "::ffff:8.8.8.8",
        "2002:808:808::1",
        "64:ff9b::808:808",
    ],
)
def test_public_addresses_pass(address):
    assert guard.refusal(address) is None


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("ftp://example.com/x", "not an http or https URL"),
        ("file:///etc/passwd", "not an http or https URL"),
        ("gopher://127.0.0.1:6379/_INFO", "not an http or https URL"),
        ("https://", "names no valid host"),
        ("https://exa mple.com/", "spaces"),
        ("https://example.com/\nx", "spaces or control characters"),
        ("https://user:pw@example.com/", "user name or password"),
        ("https://example.com:99999/", "port"),
        ("https://example.com/#frag", "fragment"),
        ("https://ex%61mple.com/", "names no valid host"),
        ("https://example.com/" + "a" * 2100, "longer than 2048"),
    ],
)
def test_urls_refused_as_written(url, says):
    with pytest.raises(Refused, match=says):
        guard.endpoint(url)


def _resolver(*answers: str):
    def resolve(host, port, type=0):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in answers]

    return resolve


def test_a_name_is_refused_when_any_of_its_addresses_is_not_public():
    found = guard.endpoint("https://hooks.example.com/in")
    assert guard.addresses(found, False, _resolver("93.184.216.34")) == ["93.184.216.34"]
    with pytest.raises(Refused, match=r"hooks\.example\.com resolves to 10\.0\.0\.7, a private"):
        guard.addresses(found, False, _resolver("93.184.216.34", "10.0.0.7"))
    # Allowed by the operator (a local stack, the tests): checked no more.
    assert guard.addresses(found, True, _resolver("10.0.0.7")) == ["10.0.0.7"]


def test_real_resolution_of_a_loopback_name_and_literals():
    with pytest.raises(Refused, match=r"localhost resolves to 127\.0\.0\.1, a loopback"):
        guard.addresses(guard.endpoint("http://localhost:8080/hook"), False)
    with pytest.raises(Refused, match=r"^::1 is a loopback address: kopter calls public"):
        guard.addresses(guard.endpoint("http://[::1]:8080/hook"), False)
    with pytest.raises(Refused, match=r"169\.254\.169\.254 is a link-local"):
        guard.addresses(guard.endpoint("http://169.254.169.254/latest/meta-data/"), False)
    public = guard.endpoint("https://93.184.216.34:8443/in?x=1")
    assert guard.addresses(public, False) == ["93.184.216.34"]
    assert (public.port, public.target, public.host_header) == (
        8443,
        "/in?x=1",
        "93.184.216.34:8443",
    )
    with pytest.raises(guard.Unresolvable):
        guard.addresses(guard.endpoint("https://no-such-host.invalid/"), False)


def test_a_slack_url_is_an_incoming_webhook():
    url = "https://hooks.slack.com/services/T000/B000/XXXXXXXX"
    assert guard.slack_endpoint(url, False).host == "hooks.slack.com"
    for wrong in (
        "http://hooks.slack.com/services/T000/B000/X",
        "https://hooks.slack.com.evil.example/services/T000/B000/X",
        "https://example.com/services/T000/B000/X",
        "https://hooks.slack.com/api/chat.postMessage",
    ):
        with pytest.raises(Refused, match="incoming webhook"):
            guard.slack_endpoint(wrong, False)
    assert guard.slack_endpoint("http://127.0.0.1:9/slack", True).port == 9


def test_levels_take_severities_and_sigmas_names():
    assert [severity_named(n) for n in ("informational", "LOW", "medium", "high", "critical")] == [
        "info",
        "info",
        "warning",
        "high",
        "critical",
    ]
    assert severity_named("warning") == "warning"
    with pytest.raises(Refused, match="'urgent' is not one of info, warning, high, critical"):
        severity_named("urgent")


NOTICE = Notice(
    tenant_id="t-1",
    kind="finding",
    subject="event:abc",
    occurred_at="2026-03-01T12:00:00Z",
    severity="critical",
    title="CloudTrail logging stopped",
    body="StopLogging by arn:aws:iam::111111111111:user/mallory",
    links={"account": "111111111111"},
)


def test_a_webhook_body_is_the_notification_with_a_timestamp_and_is_signed():
    now = datetime(2026, 3, 1, 12, 0, 5, tzinfo=UTC)
    body = messages.webhook_body(NOTICE.as_message(), now)
    payload = json.loads(body)
    assert payload == {
        "id": NOTICE.notification_id,
        **NOTICE.as_message(),
        "timestamp": "2026-03-01T12:00:05Z",
    }
    expected = hmac.new(b"s3cret-of-sixteen", body, hashlib.sha256).hexdigest()
    assert signing.signature("s3cret-of-sixteen", body) == f"sha256={expected}"
    assert signing.delivery_id("n1", "c1") == signing.delivery_id("n1", "c1")
    assert len({signing.delivery_id(n, c) for n in ("n1", "n2") for c in ("c1", "c2")}) == 4


def test_slack_and_email_read_as_text_with_the_rules_authors():
    message = {
        **NOTICE.as_message(),
        "detail": {
            "rules": [
                {"id": "r1", "title": "AWS CloudTrail Important Change", "source": "sigma",
                 "author": "vitaliy0x1", "level": "medium"},
                {"id": "cloudtrail-stopped", "title": "CloudTrail logging stopped",
                 "source": "kopter", "author": "kopter", "level": "critical"},
            ]
        },
    }  # fmt: skip
    slack = json.loads(messages.slack_body(message))
    assert slack["text"] == ":red_circle: [critical] CloudTrail logging stopped"
    texts = [b["text"]["text"] for b in slack["blocks"] if "text" in b]
    assert NOTICE.body in texts
    assert any(
        "AWS CloudTrail Important Change (sigma, level medium, by vitaliy0x1)" in t for t in texts
    )
    subject, text = messages.email(message)
    assert subject == "[kopter] critical: CloudTrail logging stopped"
    assert "by vitaliy0x1" in text and "account: 111111111111" in text and NOTICE.body in text
    # A notification with no body or links sends no empty block, which Slack refuses.
    bare = json.loads(messages.slack_body({**NOTICE.as_message(), "body": "", "links": {}}))
    assert all(b["text"]["text"] for b in bare["blocks"] if "text" in b)
