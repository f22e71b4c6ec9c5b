"""One read per area: the command line (`--json`) and the read API show the same rows of the same
stored items, for the audit log, EC2 events, the cost graph and notifications, because both call
the area's query and view in `kopter.reads`. The API's pages are followed to the end, so its
cursors (start keys) read exactly what the command line reads in one go."""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from kopter import accounts
from kopter.cloudtrail import ingest, records
from kopter.ec2 import events as ec2_events
from kopter.notifications import Notice, deliver
from kopter.reads.audit import AuditRow
from kopter.reads.costs import CostRow
from kopter.reads.ec2_events import Ec2EventRow
from kopter.reads.notifications import NotificationRow
from kopter.settings import get_settings
from kopter.tables import PriceGraphPoint
from tests.conftest import OUTPUT, Kopter, new_account_id
from tests.support.factories import log_records
from tests.support.webapp import WebApi, token, web_api

DAY = datetime(2026, 3, 1, tzinfo=UTC)
BOB = "arn:aws:iam::123456789012:user/bob"


@dataclass(frozen=True)
class Stored:
    tenant: str
    accounts: tuple[str, str]


@pytest.fixture(scope="module")
def stored() -> Stored:
    """A tenant with some of everything: audit records in two accounts, EC2 events from both
    sources (with a detail and a principal), cost points (one with a missing price) and
    notifications (with links)."""
    tenant = accounts.add_tenant(f"reads-{secrets.token_hex(3)}", f"us-east-1:{uuid.uuid4()}")
    ids = (new_account_id(), new_account_id())
    for account in ids:
        role = f"arn:aws:iam::{account}:role/kopter"
        accounts.add_account(tenant, accounts.AccountRequest(account, role, ("us-east-1",)))
    log = [*log_records(25, ids[0], DAY, seed=1), *log_records(10, ids[1], DAY, seed=2)]
    decoded = records.decode(json.dumps({"Records": log}).encode())
    ingest.write(
        decoded, tenant.tenant_id, "s3://reads/log.json.gz", get_settings(), lambda _: None
    )

    changes = [
        ec2_events.Change(f"i-0{n:016}", "us-east-1", kind, DAY + timedelta(hours=n))
        for n, kind in enumerate(["launched", "stopped", "started"])
    ]
    for account in ids:
        ec2_events.record_many(
            tenant.tenant_id, account, changes, ec2_events.DESCRIBER, get_settings()
        )
    resize = ec2_events.Change(
        "i-00000000000000000", "us-east-1", "resized", DAY + timedelta(hours=4), {"to": "m5.large"}
    )
    ec2_events.record(tenant.tenant_id, ids[0], resize, ec2_events.CLOUDTRAIL, BOB)

    for hour in range(3):
        for n, account in enumerate(ids):
            at = DAY + timedelta(hours=hour)
            missing = [{"region": "us-east-1", "instance_type": "x9.huge", "count": 1}]
            PriceGraphPoint(
                tenant.tenant_id,
                PriceGraphPoint.sort_key(at, account),
                hour=at,
                account_id=account,
                cost_usd=Decimal(f"{n + 1}.25"),
                by_region={"us-east-1": f"{n + 1}.25"},
                by_instance_type={"t3.micro": "0.25", "m5.large": f"{n + 1}"},
                missing_prices=missing if hour == 1 and n == 0 else None,
                computed_at=at,
            ).save()

    for n in range(4):
        links = {"account": f"/accounts/{ids[0]}"} if n % 2 else {}
        at = f"2026-03-0{n + 1}T00:00:00Z"
        deliver(
            Notice(tenant.tenant_id, "test", f"n{n}", at, "info", f"#{n}", "body", links),
            get_settings(),
        )
    return Stored(tenant.tenant_id, ids)


@pytest.fixture(scope="module")
def api(stored: Stored) -> Iterator[WebApi]:
    with web_api(OUTPUT / "logs") as server:
        yield server


def api_rows(api: WebApi, tenant: str, path: str, **params: Any) -> list[dict[str, Any]]:
    """Every item of a listing, following ``next`` when it pages."""
    headers = {"Authorization": f"Bearer {token(tenant)}"}
    found: list[dict[str, Any]] = []
    cursor = None
    while True:
        reply = httpx.get(
            api.base + path, params={**params, "cursor": cursor}, headers=headers, timeout=30
        )
        assert reply.status_code == 200, reply.text
        body = reply.json()
        found += body["items"]
        cursor = body.get("next")
        if cursor is None:
            return found


def same_rows(cli: list[dict[str, Any]], api: list[dict[str, Any]], row: Any) -> None:
    assert cli, "the stored data shows"
    assert cli == api
    for r in cli:  # the view's declared fields, whichever face
        assert row.__required_keys__ <= set(r) <= set(row.__annotations__)


def options(filters: dict[str, Any]) -> list[str]:
    """The command line's options of the API's parameters (a flag for ``True``)."""
    flags = [f"--{k.replace('_', '-')}" for k, v in filters.items() if v is True]
    return flags + [f"--{k.replace('_', '-')}={v}" for k, v in filters.items() if v is not True]


@pytest.mark.parametrize(
    "filters",
    [
        {},
        {"account": 1, "since": "2026-03-01T06:00:00Z"},
        {"event_source": "ec2.amazonaws.com", "until": "2026-03-01T18:00:00Z"},
        {"errors": True},
    ],
)
def test_audit_log(kopter: Kopter, api: WebApi, stored: Stored, filters):
    if "account" in filters:
        filters = {**filters, "account": stored.accounts[filters["account"]]}
    shown = kopter.rows("audit", "--tenant", stored.tenant, *options(filters))
    params = {k: "true" if v is True else v for k, v in filters.items()}
    same_rows(shown, api_rows(api, stored.tenant, "/v1/audit/aws", limit=4, **params), AuditRow)


@pytest.mark.parametrize("account", [None, 0])
def test_ec2_events(kopter: Kopter, api: WebApi, stored: Stored, account):
    only = {"account": stored.accounts[account]} if account is not None else {}
    shown = kopter.rows(
        "events", "--tenant", stored.tenant, *(f"--{k}={v}" for k, v in only.items())
    )
    same_rows(shown, api_rows(api, stored.tenant, "/v1/ec2/events", limit=2, **only), Ec2EventRow)
    assert {r["principal_arn"] for r in shown} == {None, BOB}
    assert any(r["detail"] == {"to": "m5.large"} and r["sources"] == ["cloudtrail"] for r in shown)


@pytest.mark.parametrize("by", [None, "account", "region", "instance-type"])
def test_cost_graph(kopter: Kopter, api: WebApi, stored: Stored, by):
    span = {
        "since": "2026-03-01T00:00:00Z",
        "until": "2026-03-01T23:00:00Z",
        **({"by": by} if by else {}),
    }
    shown = kopter.rows(
        "graph", "--tenant", stored.tenant, *(f"--{k}={v}" for k, v in span.items())
    )
    same_rows(shown, api_rows(api, stored.tenant, "/v1/price-graph", **span), CostRow)
    assert any(r.get("missing_prices") == 1 for r in shown)


def test_notifications(kopter: Kopter, api: WebApi, stored: Stored):
    listed = api_rows(api, stored.tenant, "/v1/notifications")
    read = httpx.post(
        f"{api.base}/v1/notifications/{listed[1]['id']}/read",
        headers={"Authorization": f"Bearer {token(stored.tenant)}"},
        timeout=30,
    )
    assert read.status_code == 200, read.text
    shown = kopter.rows("notifications", "--tenant", stored.tenant)
    same_rows(shown, api_rows(api, stored.tenant, "/v1/notifications", limit=3), NotificationRow)
    assert read.json() == shown[1]  # what marking it read answers is the row, read
    assert shown[1]["read"] and shown[1]["read_at"]
    unread = kopter.rows("notifications", "--tenant", stored.tenant, "--unread")
    same_rows(
        unread,
        api_rows(api, stored.tenant, "/v1/notifications", unread="true", limit=1),
        NotificationRow,
    )
    assert len(unread) == len(shown) - 1
