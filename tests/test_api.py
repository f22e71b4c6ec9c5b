"""The read API as a real `kopter api` process over HTTP, against the session's moto and Redis.

Two tenants, A and B, hold the same kinds of items (the same principals too). Every route of
these items (audit log, EC2 events, cost graph, notifications and marking one read, accounts) is
read as A, in both identity modes: only A's items ever come back, whatever the parameters,
cursors or paths. (Snapshots, digests and prices: tests/test_reads_more.py.) Then a
property-based run of the OpenAPI document against the server finds no 500.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.datastructures import Headers

from kopter import accounts
from kopter.api import identity
from kopter.api.cursors import Cursors, Scope, read_page
from kopter.api.errors import ApiError
from kopter.cloudtrail import ingest, records
from kopter.devstack import Child, free_port, spawn, wait_for_port
from kopter.ec2 import events as ec2_events
from kopter.errors import ConfigError
from kopter.notifications import Notice, deliver
from kopter.reads import audit as audit_log
from kopter.reads import costs
from kopter.settings import get_settings, load
from kopter.tables import FrontendNotification, PriceGraphPoint
from tests.conftest import OUTPUT, new_account_id
from tests.support.factories import log_records
from tests.support.samples import ROOT
from tests.support.tokens import b64url, handmade

DAY = datetime(2026, 3, 1, tzinfo=UTC)
ORIGIN = "https://app.example.com"
AUDIENCE, ISSUER = "kopter-web", "https://id.example.com"
CURSOR_KEY = secrets.token_urlsafe(32)
GATEWAY_SECRET = secrets.token_urlsafe(32)
CHRISTOPHE = "arn:aws:iam::457448411975:user/christophe"  # in both tenants' logs

PRIVATE_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PUBLIC_PEM = (
    PRIVATE_KEY.public_key()
    .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    .decode()
)
PRIVATE_PEM = PRIVATE_KEY.private_bytes(
    serialization.Encoding.PEM,
    serialization.PrivateFormat.PKCS8,
    serialization.NoEncryption(),
)
TOKENS: list[str] = []  # every token sent: none may show in the access log


@dataclass(frozen=True)
class Tenant:
    id: str
    accounts: tuple[str, str]
    event_ids: frozenset[str]
    notification_ids: tuple[str, ...]


def token(sub: str, *, key: Any = PRIVATE_PEM, algorithm: str = "RS256", **claims: Any) -> str:
    now = int(time.time())
    payload = {"sub": sub, "exp": now + 600, "aud": AUDIENCE, "iss": ISSUER, **claims}
    encoded = jwt.encode({k: v for k, v in payload.items() if v is not None}, key, algorithm)
    TOKENS.append(encoded)
    return encoded


def bearer(sub: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(sub)}"}


# --- the two tenants' data --------------------------------------------------------------------


def _tenant(name: str, seed: int, audit: tuple[int, int], notifications: int) -> Tenant:
    identity = f"us-east-1:{uuid.uuid4()}"
    tenant = accounts.add_tenant(f"{name}-{secrets.token_hex(3)}", identity)
    ids = (new_account_id(), new_account_id())
    for account in ids:
        role = f"arn:aws:iam::{account}:role/kopter"
        accounts.add_account(tenant, accounts.AccountRequest(account, role, ("us-east-1",)))
    log = [
        *log_records(audit[0], ids[0], DAY, seed=seed),
        *log_records(audit[1], ids[1], DAY + timedelta(days=1), seed=seed + 1),
    ]
    decoded = records.decode(json.dumps({"Records": log}).encode())
    ingest.write(decoded, identity, f"s3://{name}/log.json.gz", get_settings(), lambda _: None)
    changes = [
        ec2_events.Change(f"i-{seed}{n:04}", "us-east-1", kind, DAY + timedelta(hours=n))
        for n, kind in enumerate(["launched", "stopped", "started"])
    ]
    for account in ids:
        ec2_events.record_many(identity, account, changes, ec2_events.DESCRIBER, get_settings())
    notices = [
        Notice(identity, "test", f"n{n}", f"2026-03-0{n + 1}T00:00:00Z", "info", f"#{n}", "body")
        for n in range(notifications)
    ]
    for notice in notices:
        deliver(notice, get_settings())
    for hour in range(3):
        for n, account in enumerate(ids):
            at = DAY + timedelta(hours=hour)
            PriceGraphPoint(
                identity,
                PriceGraphPoint.sort_key(at, account),
                hour=at,
                account_id=account,
                cost_usd=Decimal(f"{n + 1}.25"),
                by_region={"us-east-1": f"{n + 1}.25"},
                by_instance_type={"t3.micro": "0.25", "m5.large": f"{n + 1}"},
                computed_at=at,
            ).save()
    event_ids = frozenset(r["eventID"] for r in log)
    keys = tuple(notification_id(notice.key) for notice in notices)
    return Tenant(identity, ids, event_ids, keys)


def notification_id(key: str) -> str:
    return base64.urlsafe_b64encode(key.encode()).rstrip(b"=").decode()


@pytest.fixture(scope="module")
def tenants() -> tuple[Tenant, Tenant]:
    return _tenant("a", 10, (45, 15), 5), _tenant("b", 20, (20, 5), 2)


# --- the servers ------------------------------------------------------------------------------


@dataclass
class Api:
    child: Child
    client: httpx.Client

    def log_lines(self) -> list[dict[str, Any]]:
        assert self.child.log_path
        return [json.loads(line) for line in self.child.log_path.read_text().splitlines()]


def _start(name: str, settings: dict[str, str]) -> Iterator[Api]:
    port = free_port()
    env = {
        **os.environ,
        "KOPTER_API_CURSOR_KEY": CURSOR_KEY,
        "KOPTER_API_CORS_ORIGINS": f"{ORIGIN},http://localhost:3000",
        **settings,
    }
    argv = [sys.executable, "-m", "kopter", "api", "--port", str(port)]
    child = spawn(name, argv, env, OUTPUT / "logs", cwd=ROOT)
    try:
        wait_for_port(child, port)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            yield Api(child, client)
    finally:
        child.stop()


@pytest.fixture(scope="module")
def api(tenants: tuple[Tenant, Tenant]) -> Iterator[Api]:
    """Bearer tokens (RS256), with audience and issuer."""
    yield from _start(
        "api-jwt",
        {
            "KOPTER_API_AUTH": "jwt",
            "KOPTER_API_JWT_KEY": PUBLIC_PEM,
            "KOPTER_API_JWT_AUDIENCE": AUDIENCE,
            "KOPTER_API_JWT_ISSUER": ISSUER,
        },
    )


@pytest.fixture(scope="module")
def gateway_api(tenants: tuple[Tenant, Tenant]) -> Iterator[Api]:
    yield from _start(
        "api-gateway", {"KOPTER_API_AUTH": "gateway", "KOPTER_API_GATEWAY_SECRET": GATEWAY_SECRET}
    )


def pages(api: Api, path: str, headers: dict[str, str], **params: Any) -> list[dict[str, Any]]:
    """Every page of a listing, following `next`."""
    found: list[dict[str, Any]] = []
    cursor = None
    while True:
        response = api.client.get(path, params={**params, "cursor": cursor}, headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        assert len(body["items"]) <= params.get("limit", 100)
        found += body["items"]
        cursor = body["next"]
        if cursor is None:
            return found


# --- every route ------------------------------------------------------------------------------


def test_audit_log_pages_through_the_tenants_events_only(api, tenants):
    a, _ = tenants
    events = pages(api, "/v1/audit/aws", bearer(a.id), limit=7)
    ids = [e["event_id"] for e in events]
    assert len(ids) == len(set(ids)) == len(a.event_ids)
    assert set(ids) == a.event_ids
    times = [(e["event_time"], e["event_id"]) for e in events]
    assert times == sorted(times, reverse=True)  # newest first, across pages
    # what `kopter audit` shows
    assert events == [audit_log.view(e) for e in audit_log.query(audit_log.AuditQuery(a.id))]


@pytest.mark.parametrize(
    "filters",
    [
        {"event_name": "AssumeRole", "errors": "true"},
        {"user": CHRISTOPHE},
        {"event_source": "s3.amazonaws.com", "since": "2026-03-01T12:00:00Z"},
        {"account": 1, "until": "2026-03-02T18:00:00Z"},
        {"account": 1, "event_name": "AssumeRole"},
    ],
)
def test_audit_filters_are_those_of_kopter_audit(api, tenants, filters):
    a, _ = tenants
    if "account" in filters:
        filters = {**filters, "account": a.accounts[filters["account"]]}
    got = pages(api, "/v1/audit/aws", bearer(a.id), limit=5, **filters)
    query = {k: v for k, v in filters.items() if k != "errors"}
    expected = audit_log.query(audit_log.AuditQuery(a.id, errors_only="errors" in filters, **query))
    assert got == [audit_log.view(e) for e in expected]
    # What the filter means, read off A's whole log rather than through kopter's query.
    everything = pages(api, "/v1/audit/aws", bearer(a.id))
    assert got == [e for e in everything if _matches(e, filters)]
    assert got, "each filter matches some of A's events"
    for name in filters:  # and each of its parts leaves some out
        fewer = {k: v for k, v in filters.items() if k != name}
        assert [e for e in everything if _matches(e, fewer)] != got, name


def _matches(event: dict[str, Any], filters: dict[str, str]) -> bool:
    checks = {
        "event_name": lambda v: event["event_name"] == v,
        "errors": lambda _: event["error_code"] is not None,
        "user": lambda v: event["principal_arn"] == v,
        "event_source": lambda v: event["event_source"] == v,
        "since": lambda v: event["event_time"] >= v,  # inclusive
        "until": lambda v: event["event_time"] < v,  # exclusive
        "account": lambda v: event["account_id"] == v,
    }
    return all(checks[name](value) for name, value in filters.items())


def test_ec2_events(api, tenants):
    a, _ = tenants
    everything = pages(api, "/v1/ec2/events", bearer(a.id), limit=2)
    assert len(everything) == 6
    assert {(e["account_id"], e["kind"]) for e in everything} == {
        (account, kind) for account in a.accounts for kind in ("launched", "stopped", "started")
    }
    assert all(e["sources"] == ["describer"] for e in everything)
    one = pages(
        api, "/v1/ec2/events", bearer(a.id), account=a.accounts[1], since="2026-03-01T01:00Z"
    )
    assert [(e["kind"], e["occurred_at"]) for e in one] == [
        ("started", "2026-03-01T02:00:00Z"),
        ("stopped", "2026-03-01T01:00:00Z"),
    ]


@pytest.mark.parametrize("by", [None, "account", "region", "instance-type"])
def test_price_graph(api, tenants, by):
    a, _ = tenants
    since, until = "2026-03-01T00:00:00Z", "2026-03-01T23:00:00Z"
    params = {"since": since, "until": until, **({"by": by} if by else {})}
    response = api.client.get("/v1/price-graph", params=params, headers=bearer(a.id))
    assert response.status_code == 200, response.text
    start, end = (datetime.fromisoformat(t) for t in (since, until))
    expected = costs.query(costs.CostQuery(a.id, start, end, by))
    assert response.json()["items"] == [costs.view(c) for c in expected]
    # The sums of the points the fixture wrote (account 0 costs 1.25 an hour, account 1 2.25),
    # oldest hour first.
    split = {
        None: {None: "3.50"},
        "account": {a.accounts[0]: "1.25", a.accounts[1]: "2.25"},
        "region": {"us-east-1": "3.50"},
        "instance-type": {"t3.micro": "0.50", "m5.large": "3.00"},
    }[by]
    name = {"account": "account", "region": "region", "instance-type": "instance_type"}.get(by)
    items = response.json()["items"]
    got = [(i["hour"], i.get(name) if name else None, i["cost_usd"]) for i in items]
    hours = [f"2026-03-01T{hour:02}:00Z" for hour in range(3)]
    assert sorted(got) == sorted((h, k, usd) for h in hours for k, usd in split.items())
    assert [h for h, _, _ in got] == sorted(h for h, _, _ in got)


def test_price_graph_shows_the_last_24_hours_by_default(api):
    """Its own tenant, whose points lie around now: the fixture's are in March 2026."""
    tenant = accounts.add_tenant(f"c-{secrets.token_hex(3)}", f"us-east-1:{uuid.uuid4()}")
    account = new_account_id()
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    for hours_ago in (-2, 1, 23, 26):  # one to come, two within the day, one before it
        at = now - timedelta(hours=hours_ago)
        PriceGraphPoint(
            tenant.tenant_id,
            PriceGraphPoint.sort_key(at, account),
            hour=at,
            account_id=account,
            cost_usd=Decimal(hours_ago + 10),
            computed_at=at,
        ).save()
    response = api.client.get("/v1/price-graph", headers=bearer(tenant.tenant_id))
    assert response.status_code == 200, response.text
    assert [p["cost_usd"] for p in response.json()["items"]] == ["33.00", "11.00"]


def test_limit_is_1_to_1000_and_long_answers_are_gzipped(api, tenants):
    a, _ = tenants
    for limit, status in ((0, 400), (1, 200), (1000, 200), (1001, 400)):
        response = api.client.get("/v1/audit/aws", params={"limit": limit}, headers=bearer(a.id))
        assert response.status_code == status, (limit, response.text)
    gzip = {"Accept-Encoding": "gzip"}
    long = api.client.get("/v1/audit/aws", headers={**bearer(a.id), **gzip})
    assert long.headers.get("Content-Encoding") == "gzip" and len(long.content) >= 1024
    assert len(long.json()["items"]) == len(a.event_ids)
    plain = api.client.get("/v1/audit/aws", headers={**bearer(a.id), "Accept-Encoding": "identity"})
    assert "Content-Encoding" not in plain.headers and plain.json() == long.json()
    assert "Content-Encoding" not in api.client.get("/healthz", headers=gzip).headers  # < 1 KB


def test_price_graph_refuses_a_bad_range(api, tenants):
    a, _ = tenants
    for params, message in [
        ({"since": "2026-01-01", "until": "2026-03-01"}, "at most 31 days"),
        ({"since": "2026-03-02", "until": "2026-03-01"}, "after until"),
        ({"since": "yesterday"}, "not an ISO date"),
        ({"by": "tenant"}, "by"),
    ]:
        response = api.client.get("/v1/price-graph", params=params, headers=bearer(a.id))
        assert response.status_code == 400
        assert message in response.json()["message"]


def test_notifications_and_marking_one_read(api, tenants):
    a, _ = tenants
    listed = pages(api, "/v1/notifications", bearer(a.id), limit=2)
    assert [n["id"] for n in listed] == list(reversed(a.notification_ids))  # newest first
    assert not any(n["read"] for n in listed)
    first = a.notification_ids[0]
    marked = api.client.post(f"/v1/notifications/{first}/read", headers=bearer(a.id))
    assert marked.status_code == 200
    assert marked.json()["read"] is True and marked.json()["id"] == first
    again = api.client.post(f"/v1/notifications/{first}/read", headers=bearer(a.id)).json()
    assert again["read_at"] == marked.json()["read_at"]  # the first time stays
    unread = pages(api, "/v1/notifications", bearer(a.id), unread="true", limit=1)
    assert [n["id"] for n in unread] == list(reversed(a.notification_ids[1:]))


def test_accounts_without_secrets(api, tenants):
    a, _ = tenants
    response = api.client.get("/v1/accounts", headers=bearer(a.id))
    assert response.status_code == 200
    assert sorted(x["account_id"] for x in response.json()["items"]) == sorted(a.accounts)
    for account in accounts.list_accounts(a.id):
        assert account.external_id not in response.text
    assert "external_id" not in response.text


def test_channels_added_listed_and_removed_the_secret_shown_once(api, tenants, kopter):
    a, b = tenants
    as_a, as_b = bearer(a.id), bearer(b.id)
    new = {"kind": "webhook", "target": "https://93.184.216.34/in?key=k3y", "min_level": "medium"}
    added = api.client.post("/v1/channels", json=new, headers=as_a)
    assert added.status_code == 201, added.text
    secret, channel = added.json()["secret"], added.json()["channel"]
    assert len(secret) >= 32
    assert (channel["kind"], channel["min_level"]) == ("webhook", "warning")  # Sigma's medium
    assert channel["target"] == "https://93.184.216.34/in?…"
    listed = api.client.get("/v1/channels", headers=as_a).json()["items"]
    assert [c["id"] for c in listed] == [channel["id"]]
    assert secret not in json.dumps(listed) and "k3y" not in json.dumps(listed)
    # The command line's rows and the API's are one view.
    assert kopter.rows("channels", "list", "--tenant", a.id) == listed
    # B neither sees nor removes A's channel.
    assert api.client.get("/v1/channels", headers=as_b).json() == {"items": []}
    assert api.client.delete(f"/v1/channels/{channel['id']}", headers=as_b).status_code == 404
    for body, says in [
        ({"kind": "webhook", "target": "http://169.254.169.254/latest/"}, "link-local"),
        ({"kind": "webhook", "target": "https://93.184.216.34/", "min_level": "loud"}, "'loud'"),
        ({"kind": "pager", "target": "x"}, "kind:"),
        ({"kind": "email", "target": "a@example.com"}, "KOPTER_CHANNELS_EMAIL_FROM"),
    ]:
        refused = api.client.post("/v1/channels", json=body, headers=as_a)
        assert refused.status_code == 400 and says in refused.json()["message"], refused.text
    assert len(api.client.get("/v1/channels", headers=as_a).json()["items"]) == 1
    gone = api.client.delete(f"/v1/channels/{channel['id']}", headers=as_a)
    assert gone.status_code == 204 and gone.content == b""
    assert api.client.delete(f"/v1/channels/{channel['id']}", headers=as_a).status_code == 404
    assert api.client.get("/v1/channels", headers=as_a).json() == {"items": []}
    assert api.child.log_path and secret not in api.child.log_path.read_text()


def test_healthz_and_request_ids(api):
    response = api.client.get("/healthz")
    assert response.json() == {"status": "ok"}
    assert uuid.UUID(response.headers["requestId"])
    echoed = api.client.get("/healthz", headers={"requestId": "c6f1f6a2-gw-42"})
    assert echoed.headers["requestId"] == "c6f1f6a2-gw-42"
    odd = api.client.get("/healthz", headers={"requestId": "x" * 300})
    assert uuid.UUID(odd.headers["requestId"])
    for path, status in (("/v1/accounts", 401), ("/nowhere", 404)):
        failed = api.client.get(path)
        assert failed.status_code == status and uuid.UUID(failed.headers["requestId"])
        assert set(failed.json()) == {"message"}


@pytest.mark.parametrize(
    "path", ["/v1/audit/aws", "/v1/notifications/abc/read", "/healthz", "/v1/anything/else"]
)
def test_cors_preflight_on_every_path(api, path):
    ask = {
        "Origin": ORIGIN,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "Authorization, Content-Type",
    }
    response = api.client.options(path, headers=ask)
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert {"GET", "POST"} <= set(response.headers["Access-Control-Allow-Methods"].split(", "))
    allowed = response.headers["Access-Control-Allow-Headers"].lower()
    assert "authorization" in allowed and "content-type" in allowed
    assert response.headers["requestId"]
    refused = api.client.options(path, headers={**ask, "Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in refused.headers


def test_cors_on_an_actual_request(api, tenants):
    a, _ = tenants
    response = api.client.get("/v1/accounts", headers={**bearer(a.id), "Origin": ORIGIN})
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "requestid" in response.headers["Access-Control-Expose-Headers"].lower()


# --- identity ---------------------------------------------------------------------------------


def _handmade(sub: str, alg: str, sign: Any) -> str:
    claims = {"sub": sub, "exp": int(time.time()) + 600, "aud": AUDIENCE, "iss": ISSUER}
    forged = handmade({"alg": alg, "typ": "JWT"}, claims, sign)
    TOKENS.append(forged)
    return forged


def test_missing_or_bad_identity_is_401(api, tenants):
    a, _ = tenants
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def hs(signing_input: bytes) -> bytes:
        return hmac.new(PUBLIC_PEM.encode(), signing_input, hashlib.sha256).digest()

    bad = {
        "no header": {},
        "not bearer": {"Authorization": f"Basic {base64.b64encode(b'a:b').decode()}"},
        "bare bearer": {"Authorization": "Bearer"},
        "garbage": {"Authorization": "Bearer not.a.token"},
        "expired": {"Authorization": f"Bearer {token(a.id, exp=int(time.time()) - 120)}"},
        "wrong key": {"Authorization": f"Bearer {token(a.id, key=other_key)}"},
        "alg none": {"Authorization": f"Bearer {_handmade(a.id, 'none', lambda _: b'')}"},
        # RS256's public key used as an HS256 secret: the classic algorithm confusion
        "hs256 with the public key": {"Authorization": f"Bearer {_handmade(a.id, 'HS256', hs)}"},
        "no expiry": {"Authorization": f"Bearer {token(a.id, exp=None)}"},
        "wrong audience": {"Authorization": f"Bearer {token(a.id, aud='someone-else')}"},
        "wrong issuer": {"Authorization": f"Bearer {token(a.id, iss='https://evil.example')}"},
        "no tenant": {"Authorization": f"Bearer {token(f'us-east-1:{uuid.uuid4()}')}"},
        "a key's shape": {"Authorization": f"Bearer {token(a.id + '#' + a.accounts[0])}"},
        "identityId header": {"identityId": a.id},
    }
    for name, headers in bad.items():
        for path in ("/v1/audit/aws", "/v1/accounts", "/v1/notifications/x/read"):
            method = "POST" if path.endswith("/read") else "GET"
            response = api.client.request(method, path, headers=headers)
            assert response.status_code == 401, (name, path, response.text)
            assert set(response.json()) == {"message"}, name
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
    expired = api.client.get("/v1/accounts", headers=bad["expired"])
    assert expired.json() == {"message": "the token has expired"}


def test_hs256_tokens():
    """The other algorithm, in-process: its own secret only, never an RS256 token."""
    secret = secrets.token_urlsafe(32)
    env = {"KOPTER_API_AUTH": "jwt", "KOPTER_API_JWT_ALGORITHM": "HS256"}
    identify = identity.from_settings(load({**env, "KOPTER_API_JWT_KEY": secret}))
    claims = {"sub": "us-east-1:abc", "exp": int(time.time()) + 60}
    good = jwt.encode(claims, secret, "HS256")
    assert identify(Headers({"authorization": f"Bearer {good}"})) == "us-east-1:abc"
    for bad in (jwt.encode(claims, secrets.token_urlsafe(32), "HS256"), token("x")):
        with pytest.raises(ApiError) as refused:
            identify(Headers({"authorization": f"Bearer {bad}"}))
        assert refused.value.status == 401
    with pytest.raises(ConfigError, match="HS256 needs a secret"):
        identity.from_settings(load({**env, "KOPTER_API_JWT_KEY": PUBLIC_PEM}))
    # 30 s of leeway on `exp`, for the issuer's clock: no more.
    for late, accepted in ((20, True), (40, False)):
        stale = jwt.encode({**claims, "exp": int(time.time()) - late}, secret, "HS256")
        try:
            identify(Headers({"authorization": f"Bearer {stale}"}))
        except ApiError as refused:
            assert not accepted and refused.message == "the token has expired", late
        else:
            assert accepted, late


def test_gateway_identity(gateway_api, api, tenants):
    a, _ = tenants
    through = {"identityId": a.id, "x-kopter-gateway-secret": GATEWAY_SECRET}
    response = gateway_api.client.get(
        "/v1/audit/aws", params={"limit": 3}, headers={**through, "requestId": "gw-req-1"}
    )
    assert response.status_code == 200
    assert response.headers["requestId"] == "gw-req-1"
    assert {e["event_id"] for e in response.json()["items"]} <= a.event_ids
    listed = pages(gateway_api, "/v1/audit/aws", through, limit=50)
    assert {e["event_id"] for e in listed} == a.event_ids
    # Every route answers through the gateway what it answers to A's bearer token.
    for path, params in [
        ("/v1/ec2/events", {}),
        ("/v1/notifications", {}),
        ("/v1/accounts", {}),
        ("/v1/price-graph", {"since": "2026-03-01", "until": "2026-03-02", "by": "account"}),
    ]:
        via_gateway = gateway_api.client.get(path, params=params, headers=through)
        assert via_gateway.status_code == 200, (path, via_gateway.text)
        items = via_gateway.json()["items"]
        as_jwt = api.client.get(path, params=params, headers=bearer(a.id)).json()["items"]
        assert items and items == as_jwt, path
    marked = gateway_api.client.post(
        f"/v1/notifications/{a.notification_ids[-1]}/read", headers=through
    )
    assert marked.status_code == 200 and marked.json()["read"] is True, marked.text
    for headers in (
        {"identityId": a.id},  # straight to kopter, not through the gateway
        {"identityId": a.id, "x-kopter-gateway-secret": GATEWAY_SECRET[:-1] + "x"},
        {"x-kopter-gateway-secret": GATEWAY_SECRET},
        {**through, "identityId": f"us-east-1:{uuid.uuid4()}"},
        {"Authorization": f"Bearer {token(a.id)}"},
    ):
        response = gateway_api.client.get("/v1/accounts", headers=headers)
        assert response.status_code == 401, headers
        assert set(response.json()) == {"message"}


def test_the_api_refuses_to_start_without_a_safe_identity(kopter):
    for env, variable in [
        ({}, "KOPTER_API_AUTH"),
        ({"KOPTER_API_AUTH": "gateway"}, "KOPTER_API_GATEWAY_SECRET"),
        ({"KOPTER_API_AUTH": "jwt", "KOPTER_API_JWT_ALGORITHM": "HS256"}, "KOPTER_API_JWT_KEY"),
        ({"KOPTER_API_AUTH": "jwt", "KOPTER_API_JWT_KEY": "short"}, "KOPTER_API_JWT_KEY"),
        ({"KOPTER_API_AUTH": "jwt", "KOPTER_API_JWT_KEY": PUBLIC_PEM}, "KOPTER_API_CURSOR_KEY"),
    ]:
        result = kopter("api", "--port", str(free_port()), env=env, ok=False)
        [line] = result.stderr.strip().splitlines()
        assert line.startswith("kopter: error: ") and variable in line, line


def test_api_settings_are_checked_and_secrets_not_shown():
    for env in (
        {"KOPTER_API_AUTH": "anyone"},
        {"KOPTER_API_JWT_ALGORITHM": "none"},
        {"KOPTER_API_CORS_ORIGINS": "app.example.com"},
        {"KOPTER_API_CORS_METHODS": "GET,post"},
        {"KOPTER_API_CORS_HEADERS": "Authorization,X Bad"},
    ):
        with pytest.raises(ConfigError, match=next(iter(env))):
            load(env)
    secrets_set = {"KOPTER_API_CURSOR_KEY": CURSOR_KEY, "KOPTER_API_JWT_KEY": CURSOR_KEY * 2}
    shown = load({**secrets_set, "KOPTER_API_GATEWAY_SECRET": GATEWAY_SECRET}).for_display()
    for name in (*secrets_set, "KOPTER_API_GATEWAY_SECRET"):
        assert shown[name] == "(set, not shown)"


# --- isolation --------------------------------------------------------------------------------


def test_no_parameter_reaches_another_tenant(api, tenants):
    a, b = tenants
    as_a = bearer(a.id)
    tries = [
        {"tenant": b.id},
        {"tenant_id": b.id},
        {"identityId": b.id},
        {"account": b.accounts[0]},
        {"user": CHRISTOPHE},  # a principal in B's log too
        {"event_name": f"{b.id}#GetBucketAcl"},
        {"user": f"x#{b.id}"},
    ]
    paths = ("/v1/audit/aws", "/v1/ec2/events", "/v1/notifications", "/v1/accounts")
    filters = {"/v1/audit/aws": {"account", "user", "event_name"}, "/v1/ec2/events": {"account"}}
    own = {path: api.client.get(path, headers=as_a).json()["items"] for path in paths}
    assert all(own.values()), "A has items of every kind to show"
    for params in tries:
        for path in paths:
            response = api.client.get(path, params=params, headers={**as_a, "identityId": b.id})
            assert response.status_code == 200, response.text
            assert b.id not in response.text and b.accounts[0] not in response.text
            assert not any(e in response.text for e in b.event_ids)
            if not set(params) & filters.get(path, set()):
                # Not a parameter of the route, nor is the header in jwt mode: A's own answer.
                assert response.json()["items"] == own[path], (path, params)
    graph_b = api.client.get(
        "/v1/price-graph",
        params={"since": "2026-03-01", "until": "2026-03-02", "by": "account", "tenant": b.id},
        headers=as_a,
    )
    assert {p["account"] for p in graph_b.json()["items"]} == set(a.accounts)


def test_another_tenants_notification_is_404(api, tenants):
    a, b = tenants
    for notification in (*b.notification_ids, "bm90IGEga2V5", "%%%", "x" * 3000):
        response = api.client.post(f"/v1/notifications/{notification}/read", headers=bearer(a.id))
        assert response.status_code == 404, response.text
        assert response.json() == {"message": "no such notification"}
    assert not any(n.read for n in FrontendNotification.query(b.id))  # B's untouched
    # ... and nothing was created in A's partition.
    in_a = sorted(notification_id(n.notification_key) for n in FrontendNotification.query(a.id))
    assert in_a == sorted(a.notification_ids)


def test_a_read_stops_after_four_dynamodb_pages_with_a_cursor():
    """A filter that matches little costs a bounded read (cursors.read_page, in-process with
    pages of 2 items, where the API's are of 500): after MAX_PAGES pages that matched nothing,
    no item and a key to go on; from it, the one unread notice, oldest of ten."""
    tenant = f"us-east-1:{uuid.uuid4()}"
    for n in range(10):
        at = f"2026-03-01T00:{n:02}:00Z"
        deliver(Notice(tenant, "test", f"p{n}", at, "info", f"#{n}", "body"), get_settings())
    [oldest, *newer] = FrontendNotification.query(tenant)
    for notification in newer:
        notification.update(actions=[FrontendNotification.read.set(True)])
    scope = Scope(tenant, "notifications", {"unread": True}, {"tenant_id": tenant}, frozenset())

    def unread(start: Any) -> tuple[list[Any], Any]:
        results = FrontendNotification.query(
            tenant,
            filter_condition=FrontendNotification.read == False,  # noqa: E712
            scan_index_forward=False,
            page_size=2,
            last_evaluated_key=start,
        )
        return read_page(results, scope, 100, FrontendNotification.from_raw_data)

    found, key = unread(None)
    # Four pages, newest first: the eighth newest is where the next read starts after.
    assert found == [] and key["notification_key"]["S"] == newer[1].notification_key
    found, key = unread(key)
    assert [n.notification_key for n in found] == [oldest.notification_key] and key is None


def _first_cursor(api: Api, tenant: str, path: str = "/v1/audit/aws", **params: Any) -> str:
    response = api.client.get(path, params={"limit": 2, **params}, headers=bearer(tenant))
    assert response.json()["next"]
    return str(response.json()["next"])


def _tampered(cursor: str, change: Any) -> str:
    body, signature = cursor.split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    change(payload)
    new_body = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    return f"{new_body}.{signature}"


def test_cursors_cannot_leave_the_tenant_or_the_query(api, tenants):
    a, b = tenants
    as_a = bearer(a.id)
    mine = _first_cursor(api, a.id)
    again = [api.client.get("/v1/audit/aws", params={"limit": 2, "cursor": mine}, headers=as_a)]
    again.append(api.client.get("/v1/audit/aws", params={"limit": 2, "cursor": mine}, headers=as_a))
    assert again[0].status_code == 200 and again[0].json() == again[1].json()  # replay: same page

    def into_b(p: dict[str, Any]) -> None:
        p["t"] = b.id
        p["k"]["tenant_id"]["S"] = b.id

    # A cursor correctly signed (the test knows the key) whose key is in B's partition.
    scope = Scope(a.id, "audit", _audit_filters(), {"tenant_id": a.id}, frozenset({"event_key"}))
    signed_into_b = Cursors(CURSOR_KEY).encode(
        scope, {"tenant_id": {"S": b.id}, "event_key": {"S": "2026-03-03T00:00:00Z#x"}}
    )
    signed_as_b = Cursors(CURSOR_KEY).encode(
        Scope(b.id, "audit", _audit_filters(), {"tenant_id": b.id}, frozenset({"event_key"})),
        {"tenant_id": {"S": b.id}, "event_key": {"S": "2026-03-03T00:00:00Z#x"}},
    )
    cases = {
        "B's cursor": (_first_cursor(api, b.id), {}),
        "signed as B": (signed_as_b, {}),
        "tampered into B": (_tampered(mine, into_b), {}),
        "tampered key": (_tampered(mine, lambda p: p["k"]["event_key"].update(S="2099")), {}),
        "signed into B": (signed_into_b, {}),
        "other filters": (mine, {"event_name": "GetBucketAcl"}),
        "other route": (mine, {"_path": "/v1/notifications"}),
        "garbage": ("bm9wZQ.bm9wZQ", {}),
        "no signature": (mine.split(".")[0], {}),
        "not base64": ("%%%.%%%", {}),
        "signed, not an object": (_signed(b"[1]"), {}),
    }
    for name, (cursor, params) in cases.items():
        path = params.pop("_path", "/v1/audit/aws")
        response = api.client.get(path, params={"cursor": cursor, **params}, headers=as_a)
        assert response.status_code == 400, (name, response.text)
        assert response.json()["message"].startswith("cursor:"), name
    ev = _first_cursor(api, a.id, "/v1/ec2/events")
    assert api.client.get("/v1/audit/aws", params={"cursor": ev}, headers=as_a).status_code == 400


def _signed(payload: bytes) -> str:
    signature = hmac.new(CURSOR_KEY.encode(), payload, hashlib.sha256).digest()
    return f"{b64url(payload)}.{b64url(signature)}"


def _audit_filters() -> dict[str, Any]:
    fields = ("since", "until", "account", "event_name", "event_source", "user")
    return {**dict.fromkeys(fields), "errors_only": False}


# --- the document, and a property-based run against the server ---------------------------------


def test_openapi_document_validates(api):
    from openapi_spec_validator import validate

    doc = api.client.get("/openapi.json").json()
    validate(doc)
    assert set(doc["paths"]) == {
        "/healthz",
        "/v1/audit/aws",
        "/v1/ec2/events",
        "/v1/price-graph",
        "/v1/notifications",
        "/v1/notifications/{id}/read",
        "/v1/channels",
        "/v1/channels/{id}",
        "/v1/accounts",
        "/v1/snapshots",
        "/v1/digests/{day}",
        "/v1/prices",
        "/v1/rules",
        "/v1/rules/{id}/enable",
        "/v1/rules/{id}/disable",
        "/v1/findings",
    }
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    audit = doc["paths"]["/v1/audit/aws"]["get"]
    assert audit["security"] == [{"bearer": []}]
    assert set(audit["responses"]) == {"200", "400", "401"}  # no 422: a bad parameter is a 400


def test_property_based_run_finds_no_500(api, tenants):
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    a, _ = tenants
    schema = schemathesis.openapi.from_url(f"{api.client.base_url}/openapi.json")
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]
    auth = bearer(a.id)
    cases = st.one_of(
        schema.as_strategy(), schema.as_strategy(schemathesis.GenerationMode.NEGATIVE)
    )
    seen: list[int] = []

    @settings(
        max_examples=100,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases)
    def run(case: Any) -> None:
        response = case.call(headers=auth)
        seen.append(response.status_code)
        case.validate_response(response, checks=checks)

    run()
    assert 200 in seen and 400 in seen


def test_access_log_is_json_and_holds_no_token(api, gateway_api):
    assert TOKENS, "runs last: the other tests sent tokens"
    for server in (api, gateway_api):
        text = server.child.log_path.read_text()  # type: ignore[union-attr]
        for secret in (*TOKENS, GATEWAY_SECRET, CURSOR_KEY):
            assert secret not in text
        lines = server.log_lines()
        access = [line for line in lines if line["logger"] == "kopter.api.access"]
        assert access and all(line["request_id"] and line["status"] for line in access)
        cursors = [line["query"]["cursor"] for line in access if "cursor" in line["query"]]
        assert cursors and set(cursors) == {"(not shown)"}
    # Nor a parameter the API does not know (test_no_parameter_reaches_another_tenant's).
    unknown = [
        value
        for line in api.log_lines()
        if line["logger"] == "kopter.api.access"
        for name, value in line["query"].items()
        if name in ("tenant", "tenant_id", "identityId")
    ]
    assert unknown and set(unknown) == {"(not shown)"}
    sample = next(
        line for line in api.log_lines() if line.get("path") == "/v1/accounts" and line["tenant_id"]
    )
    assert {"method", "status", "ms", "client", "query"} <= set(sample)
