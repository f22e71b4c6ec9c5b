"""The read API's routes, as a real `kopter api` process over HTTP (tests/support/readapi.py):
each route of the items (audit log, EC2 events, cost graph, notifications and marking one read,
accounts, channels) answers tenant A what `kopter` shows A, page after page, and its filters mean
what they say; then health, request ids, limits, gzip and CORS. (Snapshots, digests and prices:
tests/test_reads_more.py; only A's items, whatever the parameters: tests/test_api_isolation.py.)
"""

from __future__ import annotations

import json
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from kopter import accounts
from kopter.reads import audit as audit_log
from kopter.reads import costs
from kopter.tables import PriceGraphPoint
from tests.conftest import new_account_id
from tests.support.readapi import CHRISTOPHE, ORIGIN, bearer, pages


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
