"""Whom the read API answers, in both identity modes: a bearer token (RS256 with audience and
issuer, or HS256 with a secret) or API Gateway's identity header with the gateway's secret;
anything else is a 401. The API refuses to start without a safe identity, and its access log
holds no token, cursor or secret (tests/support/readapi.py has the servers and the tenants).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
import uuid
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.datastructures import Headers

from kopter.api import identity
from kopter.api.errors import ApiError
from kopter.devstack import free_port
from kopter.errors import ConfigError
from kopter.settings import load
from tests.conftest import wait_for
from tests.support.readapi import (
    AUDIENCE,
    CURSOR_KEY,
    GATEWAY_SECRET,
    ISSUER,
    PUBLIC_PEM,
    TOKENS,
    Api,
    bearer,
    pages,
    token,
)
from tests.support.tokens import handmade


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


def test_access_log_is_json_and_holds_no_token(api, gateway_api, tenants):
    """Requests of its own through both servers, with a token, the gateway's secret, a cursor
    and parameters the API does not know: the log shows each request, and none of them."""
    a, b = tenants
    through = {"identityId": a.id, "x-kopter-gateway-secret": GATEWAY_SECRET}
    sent = f"access-{secrets.token_hex(4)}"
    for server, headers in ((api, bearer(a.id)), (gateway_api, through)):
        first = server.client.get("/v1/audit/aws", params={"limit": 2}, headers=headers)
        cursor = first.json()["next"]
        for path, params in [
            ("/v1/audit/aws", {"limit": 2, "cursor": cursor}),
            ("/v1/accounts", {"tenant": b.id, "tenant_id": b.id, "identityId": b.id}),
        ]:
            ours = {**headers, "requestId": sent}
            assert server.client.get(path, params=params, headers=ours).status_code == 200

    def logged(server: Api) -> list[dict[str, Any]]:
        return [line for line in server.log_lines() if line.get("request_id") == sent]

    for server in (api, gateway_api):
        wait_for(lambda s=server: len(logged(s)) == 2, 30, "the requests' access-log lines")
    assert TOKENS
    for server in (api, gateway_api):
        text = server.child.log_path.read_text()  # type: ignore[union-attr]
        for secret in (*TOKENS, GATEWAY_SECRET, CURSOR_KEY):
            assert secret not in text
        lines = server.log_lines()
        access = [line for line in lines if line["logger"] == "kopter.api.access"]
        assert access and all(line["request_id"] and line["status"] for line in access)
        cursors = [line["query"]["cursor"] for line in access if "cursor" in line["query"]]
        assert cursors and set(cursors) == {"(not shown)"}
    # Nor a parameter the API does not know.
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
