"""Ec2Events written in bulk (``record_many``, the describer's path): the items ``save`` writes,
and never a CloudTrail principal or source lost, whichever source writes first."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from kopter import aws, dynamo
from kopter.ec2 import events
from kopter.ec2.events import CLOUDTRAIL, DESCRIBER, Change
from kopter.settings import get_settings
from kopter.tables import Ec2Event

ALICE = "arn:aws:iam::123456789012:user/alice"
WHEN = datetime(2026, 11, 27, 10, 41, 7, tzinfo=UTC)


def _tenant() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


def _raw(tenant: str, account: str, change: Change) -> dict[str, Any]:
    """The item as DynamoDB holds it, every attribute in attribute-value form."""
    key = {"S": events.event_key(tenant, account, change)}
    response = aws.client("dynamodb", get_settings()).get_item(
        TableName=Ec2Event.Meta.table_name, Key={"tenant_id": {"S": tenant}, "event_key": key}
    )
    return response["Item"]


def _without_ids(item: dict[str, Any], tenant: str) -> dict[str, Any]:
    """The item with its tenant and key taken out, to compare two tenants' items."""
    return {
        name: {"S": value["S"].replace(tenant, "T")} if "S" in value else value
        for name, value in item.items()
        if name not in ("tenant_id", "event_key")
    }


def _changes(n: int) -> list[Change]:
    return [
        Change(f"i-{i:017x}", "eu-west-1", "launched", WHEN, {"instance_type": "t3.micro"})
        for i in range(n)
    ]


def test_new_events_are_created_as_save_would_write_them_without_an_update(monkeypatch):
    saved, bulk, account = _tenant(), _tenant(), "210987654321"
    changes = [
        *_changes(130),  # more than one BatchGetItem's 100 keys
        Change("i-0aaa", "eu-west-1", "stopped", WHEN, {"from": "running"}),
        Change("i-0bbb", "eu-west-1", "terminated", WHEN),  # no detail
    ]
    for change in changes:
        events.save(saved, account, change, DESCRIBER)

    def no_update(*args: object, **kw: object) -> None:
        raise AssertionError("a new event must cost no UpdateItem")

    monkeypatch.setattr(events, "save", no_update)
    events.record_many(bulk, account, changes, DESCRIBER, get_settings())
    for change in changes:
        expected = _without_ids(_raw(saved, account, change), saved)
        assert _without_ids(_raw(bulk, account, change), bulk) == expected
    item = _raw(bulk, account, changes[-1])
    assert item["sources"] == {"SS": [DESCRIBER]} and "detail" not in item
    assert int(item["expires_at"]["N"]) == int((WHEN + timedelta(days=400)).timestamp())
    assert "principal_arn" not in item


def test_an_event_cloudtrail_wrote_first_is_joined_keeping_its_principal(monkeypatch):
    tenant, account = _tenant(), "210987654321"
    # CloudTrail's call time is seconds before EC2's own time for it: the same minute.
    launched = Change("i-0ccc", "us-east-1", "launched", WHEN, {"instance_type": "t3.micro"})
    called = Change("i-0ccc", "us-east-1", "launched", WHEN - timedelta(seconds=5), None)
    resized_at = WHEN.replace(minute=20)
    events.record(tenant, account, called, CLOUDTRAIL, ALICE)
    resized_by_alice = Change("i-0ddd", "us-east-1", "resized", resized_at, {"to": "m5.large"})
    events.record(tenant, account, resized_by_alice, CLOUDTRAIL, ALICE)
    fresh = Change("i-0eee", "us-east-1", "launched", WHEN, {"instance_type": "t3.nano"})
    resize = Change(
        "i-0ddd",
        "us-east-1",
        "resized",
        WHEN.replace(minute=0) + timedelta(hours=1),
        {"from": "t3.micro", "to": "x"},
    )

    events.record_many(tenant, account, [launched, fresh, resize], DESCRIBER, get_settings())

    joined = Ec2Event.get(tenant, events.event_key(tenant, account, called))
    assert joined.principal_arn == ALICE and joined.sources == {CLOUDTRAIL, DESCRIBER}
    assert joined.occurred_at == called.occurred_at  # the first time and detail are kept
    assert joined.detail == {"instance_type": "t3.micro"}  # CloudTrail had none
    rows = list(Ec2Event.query(tenant))
    assert sorted((e.instance_id, e.kind) for e in rows) == [
        ("i-0ccc", "launched"),
        ("i-0ddd", "resized"),  # the describer's resize joined CloudTrail's of 40 min before
        ("i-0eee", "launched"),
    ]
    [resized] = [e for e in rows if e.kind == "resized"]
    assert resized.sources == {CLOUDTRAIL, DESCRIBER}
    # CloudTrail's call names the new type, the describer the old one too: the first seen kept.
    assert resized.detail == {"to": "m5.large", "from": "t3.micro"}

    # The run delivered again: everything is recorded already, and nothing is written.
    def no_write(*args: object, **kw: object) -> None:
        raise AssertionError("a redelivered run must write no event again")

    before = {e.event_key: e.attribute_values for e in rows}
    monkeypatch.setattr(events, "save", no_write)
    monkeypatch.setattr(events, "_create", no_write)
    events.record_many(tenant, account, [launched, fresh], DESCRIBER, get_settings())
    assert {e.event_key: e.attribute_values for e in Ec2Event.query(tenant)} == before


def _record_from(monkeypatch: Any, tenant: str, account: str, change: Change) -> list[str]:
    """Make CloudTrail record ``change`` right after record_many's read, before its write."""
    keys: list[str] = []
    real = dynamo.batch_get

    def read_then_cloudtrail(*args: Any, **kw: Any) -> list[dict[str, Any]]:
        found = real(*args, **kw)
        events.record(tenant, account, change, CLOUDTRAIL, ALICE)
        keys.append(events.event_key(tenant, account, change))
        return found

    monkeypatch.setattr(events.dynamo, "batch_get", read_then_cloudtrail)
    return keys


def test_an_event_cloudtrail_writes_between_the_read_and_the_create_is_joined(monkeypatch):
    tenant, account = _tenant(), "210987654321"
    changes = _changes(5)
    raced = changes[2]
    raced_keys = _record_from(monkeypatch, tenant, account, raced)
    created: list[bool] = []
    real_create, real_save = events._create, events.save
    updated: list[str] = []

    def create(*args: Any) -> bool:
        created.append(real_create(*args))
        return created[-1]

    def save(*args: Any, **kw: Any) -> None:
        if args[3] == DESCRIBER:  # CloudTrail's own write goes through save too
            updated.append(kw["key"])
        real_save(*args, **kw)

    monkeypatch.setattr(events, "_create", create)
    monkeypatch.setattr(events, "save", save)
    events.record_many(tenant, account, changes, DESCRIBER, get_settings())

    assert sorted(created) == [False, True, True, True, True]  # the raced create was refused
    assert updated == raced_keys  # ... and that event alone joined by update
    joined = Ec2Event.get(tenant, raced_keys[0])
    assert joined.principal_arn == ALICE and joined.sources == {CLOUDTRAIL, DESCRIBER}
    assert joined.detail == {"instance_type": "t3.micro"}
    others = [Ec2Event.get(tenant, events.event_key(tenant, account, c)) for c in changes]
    assert sum(e.sources == {DESCRIBER} and e.principal_arn is None for e in others) == 4
