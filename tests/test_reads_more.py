"""Accounts, snapshots, the audit digest and prices: the command line (`--json`) and the read API
show the same rows of the same stored items, since both call one query and one view per area
(``kopter/reads/``). The API's new routes show the caller's tenant only.

The one difference is deliberate: the command line adds each account's ExternalId for the
operator to hand out, which the API never shows (test_api_routes.py asserts it)."""

from __future__ import annotations

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

from kopter import accounts, lifecycle
from kopter.devstack import free_port, spawn, wait_for_port
from kopter.tables import AuditDigest, Ec2Price, Ec2Snapshot, ReservedPrice
from tests.conftest import OUTPUT, new_account_id
from tests.support.samples import ROOT

JWT_KEY = secrets.token_urlsafe(32)
TEMPLATE = "https://kopter-templates.s3.amazonaws.com/customer.yaml"
ENV = {"KOPTER_ONBOARDING_TEMPLATE_URL": TEMPLATE}  # accounts then carry their onboarding link
REGION = f"zz-test-{secrets.token_hex(3)}-1"  # a price-list region of this module's own
DAY, B_ONLY_DAY = "2026-03-01", "2026-03-02"
WINDOWS = [datetime(2026, 3, 1, h, tzinfo=UTC) for h in (0, 12)] + [
    datetime(2026, 3, 2, tzinfo=UTC)
]


@dataclass(frozen=True)
class Tenant:
    id: str
    accounts: tuple[str, ...]


def _snapshots(tenant: str, account: str, volumes: int) -> None:
    for window in WINDOWS:
        stamp = f"{window:%Y-%m-%dT%H:%M:%SZ}"
        for region in ("us-east-1", "eu-west-3"):
            for n in range(volumes):
                volume = f"vol-{account[-4:]}{n:04}"
                failed = n == 1 and window == WINDOWS[-1]
                Ec2Snapshot(
                    f"{tenant}#{account}",
                    f"{region}#{volume}#{stamp}",
                    tenant_id=tenant,
                    account_id=account,
                    region=region,
                    volume_id=volume,
                    instance_id=f"i-{account[-4:]}{n:04}",
                    snapshot_id=None if failed else f"snap-{secrets.token_hex(8)}",
                    state="failed"
                    if failed
                    else ("deleted" if window == WINDOWS[0] else "completed"),
                    created_at=window,
                    expires_on=window + timedelta(days=7, microseconds=n),
                    failure="IncorrectState: the volume is busy" if failed else None,
                ).save()


def _digest(tenant: str, day: str, records: int) -> None:
    principal = f"arn:aws:iam::{new_account_id()}:user/mallory"
    AuditDigest(
        tenant,
        day,
        records=records,
        principals=2,
        by_principal={principal: records - 1, "ec2.amazonaws.com": 1},
        by_source={"iam.amazonaws.com": records},
        denied_calls=1,
        denied=[{"principal": principal, "count": 1, "calls": {"DeleteTrail": 1}}],
        failed_calls=0,
        failed=[],
        findings_total=1,
        findings=[
            {
                "rule": "trail-tampering",
                "severity": "high",
                "technique": {"id": "T1562.008", "name": "Disable Cloud Logs"},
                "account_id": "111111111111",
                "principal": principal,
                "count": 1,
                "calls": {"DeleteTrail": 1},
                "first_at": f"{day}T10:00:00Z",
            }
        ],
        computed_at=datetime.now(UTC),
    ).save()


def _prices() -> None:
    products = [
        ("m5.large", "Linux", "Shared", "NA", "0.0960000000", False),
        ("m5.large", "Linux", "Dedicated", "NA", "0.1050000000", False),
        ("m5.large", "Windows", "Shared", "SQL Std", "0.5760000000", False),
        ("c5.xlarge", "Linux", "Shared", "NA", "0.17", False),
        ("c4.large", "Linux", "Shared", "NA", None, True),
        ("t3.micro", "RHEL", "Shared", "NA", "0.0716", False),
    ]
    for instance_type, os_name, tenancy, software, usd, gone in products:
        Ec2Price(
            REGION,
            f"{instance_type}#{os_name}#{tenancy}#No License required#{software}",
            instance_type=instance_type,
            operating_system=os_name,
            tenancy=tenancy,
            license_model="No License required",
            pre_installed_sw=software,
            sku=secrets.token_hex(8).upper(),
            on_demand_hourly_usd=Decimal(usd) if usd else None,
            reserved=[
                ReservedPrice(
                    lease_length="1yr",
                    offering_class="standard",
                    purchase_option=option,
                    upfront_usd=Decimal(upfront),
                    hourly_usd=Decimal(hourly),
                )
                for option, upfront, hourly in (
                    ("No Upfront", "0", "0.0600000000"),
                    ("All Upfront", "494.00", "0"),
                )
            ]
            if instance_type == "m5.large"
            else [],
            offer_version="20261201000000",
            gone=gone,
            updated_at=datetime.now(UTC),
        ).save()


def _tenant(name: str, accounts_count: int) -> Tenant:
    tenant = accounts.add_tenant(f"{name}-{secrets.token_hex(3)}", f"us-east-1:{uuid.uuid4()}")
    ids = tuple(new_account_id() for _ in range(accounts_count))
    for n, account in enumerate(ids):
        request = accounts.AccountRequest(
            account,
            f"arn:aws:iam::{account}:role/kopter",
            ("us-east-1", "eu-west-3"),
            f"trail-{name}" if n == 0 else None,
            "org" if n == 0 else None,
        )
        accounts.add_account(tenant, request)
        _snapshots(tenant.tenant_id, account, volumes=3)
    return Tenant(tenant.tenant_id, ids)


@pytest.fixture(scope="module")
def tenants() -> tuple[Tenant, Tenant]:
    a, b = _tenant("a", 3), _tenant("b", 1)
    lifecycle.rotate_external_id(a.id, a.accounts[1])  # a rotation pending
    lifecycle.remove_account(a.id, a.accounts[2])  # disconnected, its snapshots kept
    _digest(a.id, DAY, 40)
    _digest(b.id, DAY, 7)
    _digest(b.id, B_ONLY_DAY, 9)
    _prices()
    return a, b


@dataclass
class Api:
    client: httpx.Client

    def get(self, tenant: str | None, path: str, **params: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {_token(tenant)}"} if tenant else {}
        return self.client.get(path, params=params, headers=headers)

    def pages(self, tenant: str, path: str, **params: Any) -> list[dict[str, Any]]:
        """Every page of a listing, following `next`."""
        found: list[dict[str, Any]] = []
        cursor = None
        while True:
            response = self.get(tenant, path, **params, **({"cursor": cursor} if cursor else {}))
            assert response.status_code == 200, response.text
            found += response.json()["items"]
            cursor = response.json()["next"]
            if cursor is None:
                return found


def _token(tenant: str) -> str:
    return jwt.encode({"sub": tenant, "exp": int(time.time()) + 600}, JWT_KEY, "HS256")


@pytest.fixture(scope="module")
def api(tenants: tuple[Tenant, Tenant]) -> Iterator[Api]:
    port = free_port()
    env = {
        **os.environ,
        **ENV,
        "KOPTER_API_AUTH": "jwt",
        "KOPTER_API_JWT_ALGORITHM": "HS256",
        "KOPTER_API_JWT_KEY": JWT_KEY,
        "KOPTER_API_CURSOR_KEY": secrets.token_urlsafe(32),
    }
    argv = [sys.executable, "-m", "kopter", "api", "--port", str(port)]
    child = spawn("api-reads", argv, env, OUTPUT / "logs", cwd=ROOT)
    try:
        wait_for_port(child, port)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            yield Api(client)
    finally:
        child.stop()


# --- the same rows in both faces --------------------------------------------------------------


def test_accounts(kopter, api, tenants):
    a, _ = tenants
    shown = kopter.rows("accounts", "list", "--tenant", a.id, "--all", env=ENV)
    assert {r["account_id"] for r in shown} == set(a.accounts)
    assert all(r["external_id"].startswith("kopter-") for r in shown)  # the operator's alone
    assert [r["rotation_pending"] for r in shown] == [
        r["account_id"] == a.accounts[1] for r in shown
    ]
    [removed] = [r for r in shown if r["removed_at"]]
    assert removed["account_id"] == a.accounts[2] and removed["onboarding_link"] is None
    assert all(r["onboarding_link"].startswith("https://") for r in shown if r is not removed)
    served = api.get(a.id, "/v1/accounts").json()["items"]
    assert served == [{k: v for k, v in r.items() if k != "external_id"} for r in shown]


@pytest.mark.parametrize("which", [None, 0, 2])
def test_snapshots(kopter, api, tenants, which):
    a, _ = tenants
    account = ["--account", a.accounts[which]] if which is not None else []
    shown = kopter.rows("snapshots", "--tenant", a.id, *account)
    params = {"account": a.accounts[which]} if which is not None else {}
    assert api.pages(a.id, "/v1/snapshots", limit=4, **params) == shown
    kept = a.accounts[which : which + 1] if which is not None else a.accounts[:2]  # connected ones
    assert {r["account_id"] for r in shown} == set(kept)
    assert len(shown) == len(kept) * len(WINDOWS) * 2 * 3
    assert [r["window"] for r in shown] == sorted((r["window"] for r in shown), reverse=True)
    assert {r["state"] for r in shown} == {"deleted", "completed", "failed"}


def test_digest(kopter, api, tenants):
    a, _ = tenants
    [shown] = kopter.rows("digest", "--tenant", a.id, "--date", DAY)
    response = api.get(a.id, f"/v1/digests/{DAY}")
    assert response.status_code == 200, response.text
    assert response.json() == shown
    assert shown["tenant_id"] == a.id and shown["records"] == 40
    assert shown["findings"][0]["technique"]["id"] == "T1562.008"


OFFERED = {
    ("m5.large", "Linux", "Shared"),
    ("m5.large", "Linux", "Dedicated"),
    ("m5.large", "Windows", "Shared"),
    ("c5.xlarge", "Linux", "Shared"),
    ("t3.micro", "RHEL", "Shared"),
}


@pytest.mark.parametrize(
    ("filters", "products"),
    [
        ({}, OFFERED),
        ({"instance_type": "m5.large"}, {p for p in OFFERED if p[0] == "m5.large"}),
        (
            {"instance_type": "m5.large", "os": "linux", "tenancy": "dedicated"},
            {("m5.large", "Linux", "Dedicated")},
        ),
        ({"os": "Windows"}, {("m5.large", "Windows", "Shared")}),
        ({"gone": True}, OFFERED | {("c4.large", "Linux", "Shared")}),
    ],
)
def test_prices(kopter, api, tenants, filters, products):
    a, _ = tenants
    options = {"instance_type": "--instance-type", "os": "--os", "tenancy": "--tenancy"}
    argv = [f for k, v in filters.items() if k != "gone" for f in (options[k], v)]
    shown = kopter.rows(
        "prices", "--region", REGION, *argv, *(["--gone"] if "gone" in filters else [])
    )
    assert {(r["instance_type"], r["os"], r["tenancy"]) for r in shown} == products
    assert len(shown) == len(products)
    assert api.pages(a.id, "/v1/prices", region=REGION, limit=2, **filters) == shown
    if filters == {"instance_type": "m5.large"}:
        [linux] = [r for r in shown if (r["os"], r["tenancy"]) == ("Linux", "Shared")]
        assert linux["on_demand_hourly_usd"] == "0.096"
        assert [t["upfront_usd"] for t in linux["reserved"]] == ["0", "494"]
    assert any(r["gone"] for r in shown) == ("gone" in filters)


# --- the new routes show the caller's tenant only --------------------------------------------


def test_another_tenants_snapshots_and_digests_are_not_seen(api, tenants):
    a, b = tenants
    mine = api.pages(a.id, "/v1/snapshots", limit=50)
    assert not {r["account_id"] for r in mine} & set(b.accounts)
    refused = api.get(a.id, "/v1/snapshots", account=b.accounts[0])
    assert refused.status_code == 404 and refused.json() == {"message": "no such account"}
    assert api.get(a.id, f"/v1/digests/{B_ONLY_DAY}").status_code == 404
    assert api.get(a.id, f"/v1/digests/{DAY}").json()["records"] == 40  # A's, not B's 7
    theirs = api.get(b.id, "/v1/snapshots", limit=2).json()["next"]
    for cursor in (theirs, "bm9wZQ.bm9wZQ"):
        response = api.get(a.id, "/v1/snapshots", limit=2, cursor=cursor)
        assert response.status_code == 400 and response.json()["message"].startswith("cursor:")
    other_filters = api.get(a.id, "/v1/prices", region=REGION, limit=1).json()["next"]
    response = api.get(a.id, "/v1/prices", region=REGION, os="Linux", cursor=other_filters)
    assert response.status_code == 400


def test_the_new_routes_need_a_signed_in_tenant_and_good_parameters(api, tenants):
    a, _ = tenants
    for path in ("/v1/snapshots", f"/v1/digests/{DAY}", f"/v1/prices?region={REGION}"):
        assert api.get(None, path).status_code == 401, path
        assert api.get(f"us-east-1:{uuid.uuid4()}", path).status_code == 401, path
    for path, params in [
        ("/v1/digests/2026-13-01", {}),
        ("/v1/digests/yesterday", {}),
        ("/v1/prices", {}),
        ("/v1/prices", {"region": "us east"}),
        ("/v1/snapshots", {"account": "12"}),
    ]:
        response = api.get(a.id, path, **params)
        assert response.status_code == 400, (path, params, response.text)
        assert set(response.json()) == {"message"}
