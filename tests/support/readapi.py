"""The read API's tests' shared world (tests/test_api_*.py), a pytest plugin (tests/conftest.py):
two tenants, A and B, holding the same kinds of items (the same principals too), and two real
`kopter api` processes, one per identity mode, with the tokens and secrets they are given.

The servers are session-scoped: they keep no state of their own (every answer is read from the
session's tables), so the modules that run in one process share them. The tenants are
module-scoped: a module's tests mark notifications read, and each module starts from its own.
"""

from __future__ import annotations

import base64
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

from kopter import accounts
from kopter.cloudtrail import ingest, records
from kopter.devstack import Child, free_port, spawn, wait_for_port
from kopter.ec2 import events as ec2_events
from kopter.notifications import Notice, deliver
from kopter.settings import get_settings
from kopter.tables import PriceGraphPoint
from tests.conftest import OUTPUT, new_account_id
from tests.support.factories import log_records
from tests.support.samples import ROOT

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


@pytest.fixture(scope="session")
def api(stack: None) -> Iterator[Api]:
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


@pytest.fixture(scope="session")
def gateway_api(stack: None) -> Iterator[Api]:
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
