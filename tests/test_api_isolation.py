"""Read as tenant A, only A's items ever come back, whatever the parameters, cursors or paths:
B holds the same kinds of items (the same principals too). A cursor is signed, and bound to its
tenant, route and filters; a read that matches little stops after four DynamoDB pages with a
cursor. (tests/support/readapi.py has the servers and the tenants.)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from typing import Any

from kopter.api.cursors import Cursors, Scope, read_page
from kopter.notifications import Notice, deliver
from kopter.settings import get_settings
from kopter.tables import FrontendNotification
from tests.support.readapi import CHRISTOPHE, CURSOR_KEY, Api, bearer, notification_id
from tests.support.tokens import b64url


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
