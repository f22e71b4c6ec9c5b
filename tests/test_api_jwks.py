"""The read API trusting an identity provider by its JWKS URL (``KOPTER_API_JWT_JWKS_URL``), as a
real `kopter api` process over HTTP.

- moto's Cognito: a user pool with two app clients and users; InitiateAuth hands out RS256
  tokens, and moto's server serves the pool's keys at ``/<pool id>/.well-known/jwks.json``. The
  API takes the ID token of a user who is a tenant, and refuses every other token.
- A JWKS issuer of the test's own on 127.0.0.1, whose keys the test rotates and whose fetches it
  counts: a key published after the API started is taken without a restart, a key removed is
  refused once the set is fetched again, an issuer that fails or hangs costs a 5 s wait at most,
  and two fetches are never less than the cooldown apart, whatever the tokens.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from moto.utilities.utils import load_resource

from kopter import accounts
from kopter.api import identity
from kopter.api.identity import UNAVAILABLE
from kopter.api.jwks import FETCH_TIMEOUT
from kopter.devstack import Child, free_port, start_api
from kopter.errors import ConfigError
from kopter.settings import load
from tests.conftest import OUTPUT, SETTINGS, new_account_id
from tests.support.samples import ROOT
from tests.support.serving import serving
from tests.support.tokens import b64url, handmade

ISSUER, AUDIENCE = "https://id.example.com/pool", "kopter-web"
COOLDOWN = 2  # KOPTER_API_JWT_JWKS_COOLDOWN_SECONDS of the tests' own issuer
CACHE = 4  # KOPTER_API_JWT_JWKS_CACHE_SECONDS where the test lets the cache expire
HANG = FETCH_TIMEOUT + 10  # how long the issuer keeps a fetch waiting when it hangs
PASSWORD = "Correct-Horse-9"


@dataclass
class Api:
    child: Child
    client: httpx.Client

    def status(self, token: str) -> int:
        response = self.client.get("/v1/accounts", headers={"Authorization": f"Bearer {token}"})
        assert set(response.json()) == ({"items"} if response.is_success else {"message"})
        return response.status_code


@contextmanager
def jwks_api(url: str, issuer: str, audience: str, **settings: str) -> Iterator[Api]:
    port = free_port()
    env = {
        **os.environ,
        "KOPTER_API_AUTH": "jwt",
        "KOPTER_API_JWT_JWKS_URL": url,
        "KOPTER_API_JWT_ISSUER": issuer,
        "KOPTER_API_JWT_AUDIENCE": audience,
        "KOPTER_API_CURSOR_KEY": secrets.token_urlsafe(32),
        **settings,
    }
    child = start_api(f"api-jwks-{port}", port, env, OUTPUT / "logs", cwd=ROOT)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            yield Api(child, client)
    finally:
        child.stop()


def tenant_with_an_account(identity: str) -> str:
    """A tenant whose id is ``identity``, with one account: what /v1/accounts shows it."""
    tenant = accounts.add_tenant(f"jwks-{secrets.token_hex(3)}", identity)
    account = new_account_id()
    role = f"arn:aws:iam::{account}:role/kopter"
    accounts.add_account(tenant, accounts.AccountRequest(account, role, ("us-east-1",)))
    return account


# --- moto's Cognito ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Pool:
    id: str
    issuer: str
    jwks_url: str
    client_id: str


def user_pool(idp: Any, clients: int = 1) -> tuple[Pool, list[str]]:
    pool = idp.create_user_pool(PoolName=f"kopter-{secrets.token_hex(3)}")["UserPool"]
    ids = [
        idp.create_user_pool_client(
            UserPoolId=pool["Id"],
            ClientName=f"web-{n}",
            ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
        )["UserPoolClient"]["ClientId"]
        for n in range(clients)
    ]
    issuer = f"https://cognito-idp.{SETTINGS.region}.amazonaws.com/{pool['Id']}"
    jwks_url = f"{SETTINGS.aws_endpoint_url}/{pool['Id']}/.well-known/jwks.json"
    return Pool(pool["Id"], issuer, jwks_url, ids[0]), ids


def sign_in(idp: Any, pool: Pool, user: str, client_id: str) -> dict[str, str]:
    """The user's tokens from InitiateAuth (created on first use)."""
    try:
        idp.admin_create_user(UserPoolId=pool.id, Username=user, MessageAction="SUPPRESS")
        idp.admin_set_user_password(
            UserPoolId=pool.id, Username=user, Password=PASSWORD, Permanent=True
        )
    except idp.exceptions.UsernameExistsException:
        pass
    result = idp.initiate_auth(
        ClientId=client_id,
        AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": user, "PASSWORD": PASSWORD},
    )["AuthenticationResult"]
    return {"id": result["IdToken"], "access": result["AccessToken"]}


def test_the_api_takes_a_cognito_pools_id_token_and_nothing_else():
    idp = boto3.client("cognito-idp", endpoint_url=SETTINGS.aws_endpoint_url)
    pool, (client_id, other_client) = user_pool(idp, clients=2)
    alice = sign_in(idp, pool, "alice", client_id)
    sub = jwt.decode(alice["id"], options={"verify_signature": False})["sub"]
    account = tenant_with_an_account(sub)
    mallory = sign_in(idp, pool, "mallory", client_id)  # a user of the pool, not a tenant
    other_pool, _ = user_pool(idp)
    elsewhere = sign_in(idp, other_pool, "alice", other_pool.client_id)

    # moto signs every pool's tokens with the key it ships (kid "dummy"): signed with it, the
    # tokens below are the pool's own but for the one claim or header each gets wrong.
    pool_key = jwt.PyJWK(load_resource("cognitoidp/resources/jwks-private.json"))
    public_pem = pool_key.key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    now = int(time.time())
    claims = {"sub": sub, "aud": client_id, "iss": pool.issuer, "token_use": "id", "exp": now + 600}

    def forged(kid: str | None = "dummy", key: Any = pool_key.key, **changed: Any) -> str:
        headers = {"kid": kid} if kid else None
        return jwt.encode({**claims, **changed}, key, "RS256", headers=headers)

    def hs256(signing_input: bytes) -> bytes:
        return hmac.new(public_pem, signing_input, hashlib.sha256).digest()

    with jwks_api(pool.jwks_url, pool.issuer, client_id) as api:
        response = api.client.get(
            "/v1/accounts", headers={"Authorization": f"Bearer {alice['id']}"}
        )
        assert response.status_code == 200, response.text
        assert [a["account_id"] for a in response.json()["items"]] == [account]
        assert api.status(forged()) == 200  # the forger's baseline: right but for what it changes

        refused = {
            "the access token (client_id, no aud)": alice["access"],
            "another client's ID token": sign_in(idp, pool, "alice", other_client)["id"],
            "a user who is not a tenant": mallory["id"],
            "another pool's token, same key": elsewhere["id"],
            "wrong issuer": forged(iss="https://cognito-idp.us-east-1.amazonaws.com/us-east-1_x"),
            "wrong audience": forged(aud="someone-else"),
            "expired": forged(exp=now - 120),
            "unknown kid": forged(kid="not-the-pools"),
            "no kid": forged(kid=None),
            "another key, the pool's kid": forged(
                key=rsa.generate_private_key(public_exponent=65537, key_size=2048)
            ),
            "alg none": handmade({"alg": "none", "kid": "dummy"}, claims, lambda _: b""),
            "HS256 keyed with the pool's public key": handmade(
                {"alg": "HS256", "kid": "dummy"}, claims, hs256
            ),
        }
        for name, token in refused.items():
            assert api.status(token) == 401, name
        document = api.client.get("/openapi.json").json()
        assert document["paths"]["/v1/accounts"]["get"]["responses"]["503"]


# --- an issuer of the test's own --------------------------------------------------------------


@dataclass(frozen=True)
class Key:
    kid: str
    private: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )

    def jwk(self) -> dict[str, Any]:
        public = RSAAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        return {**public, "kid": self.kid, "use": "sig", "alg": "RS256"}

    def token(self, sub: str) -> str:
        claims = {"sub": sub, "iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time()) + 600}
        return jwt.encode(claims, self.private, "RS256", headers={"kid": self.kid})


class Issuer(ThreadingHTTPServer):
    """Serves ``keys`` at /jwks.json (or fails, or hangs), and notes when each fetch came."""

    block_on_close = False  # closed without waiting for a hung fetch's thread
    keys: list[dict[str, Any]]
    fetches: list[float]
    mode: str  # "serve", "fail" (a 500), "garbage" (a 200 that is not JSON) or "hang"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/jwks.json"

    def publish(self, *keys: Key | dict[str, Any]) -> None:
        self.keys = [k.jwk() if isinstance(k, Key) else k for k in keys]

    def gaps(self) -> list[float]:
        return [b - a for a, b in zip(self.fetches, self.fetches[1:], strict=False)]


class Handler(BaseHTTPRequestHandler):
    server: Issuer

    def do_GET(self) -> None:
        self.server.fetches.append(time.monotonic())
        if self.server.mode == "hang":
            time.sleep(HANG)
        status = 500 if self.server.mode == "fail" else 200
        body = json.dumps({"keys": self.server.keys}).encode()
        if self.server.mode != "serve":
            body = b"<html>Service Unavailable</html>"
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass  # the API gave up on a hung fetch

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    server = Issuer(("127.0.0.1", 0), Handler)
    server.keys, server.fetches, server.mode = [], [], "serve"
    with serving(server):
        yield server
    # Whatever the tokens, the issuer was never asked twice within the cooldown.
    assert all(gap >= COOLDOWN for gap in server.gaps()), server.gaps()


def until(api: Api, token: str, status: int, deadline: float) -> list[int]:
    """Send ``token`` until the API answers ``status``: the statuses before it."""
    before = []
    while (got := api.status(token)) != status:
        assert time.monotonic() < deadline, f"still {got}, not {status}"
        before.append(got)
        time.sleep(0.2)
    return before


def test_a_rotated_key_is_taken_without_a_restart(issuer):
    tenant = f"us-east-1:{secrets.token_hex(8)}"
    tenant_with_an_account(tenant)
    k1, k2, k3 = Key("k1"), Key("k2"), Key("k3")
    secret = secrets.token_bytes(32)
    # A symmetric key in the set: neither its HS256 tokens nor an RS256 token naming it pass.
    oct_key = {"kty": "oct", "kid": "oct", "k": b64url(secret), "alg": "HS256"}
    issuer.publish(k1, oct_key)
    settings = {
        "KOPTER_API_JWT_JWKS_CACHE_SECONDS": "3600",  # the set changes only when a kid is new
        "KOPTER_API_JWT_JWKS_COOLDOWN_SECONDS": str(COOLDOWN),
    }
    with jwks_api(issuer.url, ISSUER, AUDIENCE, **settings) as api:
        pid = api.child.process.pid
        assert [api.status(k1.token(tenant)) for _ in range(20)] == [200] * 20
        claims = {"sub": tenant, "iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time()) + 60}
        on_oct = {"kid": "oct"}
        assert api.status(jwt.encode(claims, secret, "HS256", headers=on_oct)) == 401
        assert api.status(jwt.encode(claims, k1.private, "RS256", headers=on_oct)) == 401
        assert len(issuer.fetches) == 1  # fetched once, then cached
        # Past the cooldown, a token that names no key, or that is not RS256, costs no fetch.
        time.sleep(max(0, issuer.fetches[0] + COOLDOWN + 1 - time.monotonic()))
        assert api.status(jwt.encode(claims, k1.private, "RS256")) == 401
        none = handmade({"alg": "none", "kid": "k9"}, claims, lambda _: b"")
        assert api.status(none) == 401
        assert len(issuer.fetches) == 1

        issuer.publish(k1, k2)  # the issuer adds a key, and signs with it
        early = until(api, k2.token(tenant), 200, time.monotonic() + COOLDOWN + 30)
        assert set(early) <= {401}  # refused only while within the cooldown of the first fetch
        assert len(issuer.fetches) == 2
        assert api.child.alive and api.child.process.pid == pid  # no restart

        issuer.publish(k2)  # k1 removed: its tokens pass until the set is fetched again...
        assert api.status(k1.token(tenant)) == 200
        issuer.publish(k2, k3)  # ... which the next new kid causes
        until(api, k3.token(tenant), 200, time.monotonic() + COOLDOWN + 30)
        assert len(issuer.fetches) == 3
        assert api.status(k1.token(tenant)) == 401
        assert api.status(k2.token(tenant)) == 200

        # A flood of made-up kids for three cooldowns: a fetch after each cooldown at most.
        fetched = len(issuer.fetches)
        made_up = Key("made-up")
        start = time.monotonic()
        while time.monotonic() - start < 3 * COOLDOWN:
            kid = {"kid": secrets.token_hex(8)}
            assert api.status(jwt.encode(claims, made_up.private, "RS256", headers=kid)) == 401
        flood = len(issuer.fetches) - fetched
        assert 1 <= flood <= 1 + (time.monotonic() - start) / COOLDOWN, flood


def test_the_cache_expires_and_an_issuers_outage_keeps_the_keys(issuer):
    tenant = f"us-east-1:{secrets.token_hex(8)}"
    tenant_with_an_account(tenant)
    k1, k2 = Key("k1"), Key("k2")
    issuer.mode = "fail"  # down when the API starts
    settings = {
        "KOPTER_API_JWT_JWKS_CACHE_SECONDS": str(CACHE),
        "KOPTER_API_JWT_JWKS_COOLDOWN_SECONDS": str(COOLDOWN),
    }
    with jwks_api(issuer.url, ISSUER, AUDIENCE, **settings) as api:
        response = api.client.get(
            "/v1/accounts", headers={"Authorization": f"Bearer {k1.token(tenant)}"}
        )
        assert response.status_code == 503
        assert response.json() == {"message": UNAVAILABLE}
        issuer.publish(k1)
        issuer.mode = "serve"
        assert set(until(api, k1.token(tenant), 200, time.monotonic() + COOLDOWN + 30)) <= {503}

        # k1 removed, and no token names a new key: k1 is refused once the cache expired.
        issuer.publish(k2)
        fetched = issuer.fetches[-1]
        until(api, k1.token(tenant), 401, time.monotonic() + CACHE + 30)
        assert issuer.fetches[-1] - fetched >= CACHE

        # The issuer answers garbage: the keys last fetched are kept, and fetched again a cache
        # later.
        issuer.mode = "garbage"
        fetched = len(issuer.fetches)
        while len(issuer.fetches) == fetched:
            assert api.status(k2.token(tenant)) == 200
            time.sleep(0.2)
        assert api.status(k2.token(tenant)) == 200

        # The issuer hangs: the request that fetches waits FETCH_TIMEOUT, not the issuer.
        issuer.mode = "hang"
        fetched = len(issuer.fetches)
        waits = []
        while len(issuer.fetches) == fetched:
            start = time.monotonic()
            assert api.status(k2.token(tenant)) == 200
            waits.append(time.monotonic() - start)
        assert FETCH_TIMEOUT - 0.5 <= max(waits) < HANG - 3, waits
        issuer.mode = "serve"


JWKS_SETTINGS = {
    "KOPTER_API_AUTH": "jwt",
    "KOPTER_API_JWT_JWKS_URL": "https://cognito-idp.us-east-1.amazonaws.com/p/.well-known/jwks.json",
    "KOPTER_API_JWT_ISSUER": "https://cognito-idp.us-east-1.amazonaws.com/p",
    "KOPTER_API_JWT_AUDIENCE": "client",
}


@pytest.mark.parametrize(
    ("changed", "message"),
    [
        ({"KOPTER_API_JWT_JWKS_URL": None}, "KOPTER_API_JWT_KEY to the PEM"),  # neither
        ({"KOPTER_API_JWT_ALGORITHM": "HS256"}, "KOPTER_API_JWT_ALGORITHM"),
        ({"KOPTER_API_JWT_ISSUER": None}, "KOPTER_API_JWT_ISSUER"),
        ({"KOPTER_API_JWT_AUDIENCE": None}, "KOPTER_API_JWT_AUDIENCE"),
        ({"KOPTER_API_JWT_JWKS_COOLDOWN_SECONDS": "301"}, "KOPTER_API_JWT_JWKS_CACHE_SECONDS"),
        ({"KOPTER_API_JWT_JWKS_CACHE_SECONDS": "0"}, "KOPTER_API_JWT_JWKS_CACHE_SECONDS"),
        ({"KOPTER_API_JWT_JWKS_URL": "http://cognito.example/jwks.json"}, "not an https URL"),
        ({"KOPTER_API_JWT_JWKS_URL": "http://localhost:9/jwks.json"}, "not an https URL"),
        ({"KOPTER_API_JWT_JWKS_URL": "ftp://127.0.0.1/jwks.json"}, "not an https URL"),
    ],
)
def test_bad_jwks_settings_are_refused(changed, message):
    env = {k: v for k, v in {**JWKS_SETTINGS, **changed}.items() if v is not None}
    with pytest.raises(ConfigError, match=message):
        identity.from_settings(load(env))


def test_jwks_settings_that_are_taken():
    for url in ("http://127.0.0.1:9/jwks.json", "http://[::1]:9/jwks.json"):
        assert identity.from_settings(load({**JWKS_SETTINGS, "KOPTER_API_JWT_JWKS_URL": url}))
    # The template passes the JWKS URL to the API in gateway mode too, where it is not used.
    assert identity.from_settings(
        load(
            {
                **JWKS_SETTINGS,
                "KOPTER_API_AUTH": "gateway",
                "KOPTER_API_GATEWAY_SECRET": secrets.token_urlsafe(32),
                "KOPTER_API_JWT_KEY": "x" * 40,
            }
        )
    )


def test_a_key_and_a_jwks_url_are_one_line_at_start_up(kopter):
    env = {**JWKS_SETTINGS, "KOPTER_API_JWT_KEY": secrets.token_urlsafe(32)}
    result = kopter("api", "--port", str(free_port()), env=env, ok=False)
    [line] = result.stderr.strip().splitlines()
    assert line == "kopter: error: set KOPTER_API_JWT_KEY or KOPTER_API_JWT_JWKS_URL, not both"
