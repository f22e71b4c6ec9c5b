"""The audit log's items, written as raw attribute dicts by ``records.items`` for speed, are what
the ``AuditLogEvent`` model declares: the same attributes, of the same DynamoDB types, the
indexes' keys among them, and the composite keys its builders make; the event key is the one
docs/pipelines/ingest.md defines (`eventTime#eventID` of the record as CloudTrail wrote it). Fed
every real record of tests/fixtures/real/cloudtrail; a negative control shows each check fails
when one side drifts."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable
from typing import Any

import pytest
from pynamodb.attributes import NumberAttribute, UnicodeAttribute
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model

from kopter.cloudtrail import records
from kopter.tables import AuditLogEvent
from tests.support.samples import CLOUD_SNITCH_FILE, STRATUS_DIR

pytestmark = pytest.mark.unit  # no AWS, no Redis

TENANT = "tenant-1"


DOCUMENTS = [gzip.decompress(CLOUD_SNITCH_FILE.read_bytes())]
DOCUMENTS += [path.read_bytes() for path in sorted(STRATUS_DIR.glob("*.json"))]


def _real_items() -> list[dict[str, Any]]:
    found = []
    for document in DOCUMENTS:
        decoded = records.decode(document)
        assert decoded.rejected == []
        found += decoded.records
    return list(records.items(found, TENANT, "s3://bucket/key.json.gz", 1_900_000_000))


def _raw_records() -> list[dict[str, Any]]:
    """The same records read with the standard library's JSON parser, not kopter's decoder: a
    file is ``{"Records": [...]}`` (the detonation logs are bare arrays)."""
    found = []
    for document in DOCUMENTS:
        parsed = json.loads(document)
        found += parsed["Records"] if isinstance(parsed, dict) else parsed
    return found


ITEMS = _real_items()
RAW = _raw_records()


def mismatches(model: type[Model], items: Iterable[dict[str, Any]]) -> list[str]:
    """Where the items and the model disagree: an attribute on one side only, or of another
    type; a required attribute missing from an item; an index key the model does not declare."""
    declared = {a.attr_name: a for a in model.get_attributes().values()}
    problems = []
    for index in model._indexes.values():
        for key in index.Meta.attributes.values():
            attribute = declared.get(key.attr_name)
            if attribute is None or attribute.attr_type != key.attr_type:
                problems.append(f"index {index.Meta.index_name}: key {key.attr_name} undeclared")
    written: dict[str, set[str]] = {}
    for n, item in enumerate(items):
        for name, value in item.items():
            written.setdefault(name, set()).update(value)
        problems += [
            f"item {n}: no {name}"
            for name, attribute in declared.items()
            if not attribute.null and name not in item
        ]
    problems += [f"{name}: declared, never written" for name in declared.keys() - written.keys()]
    problems += [f"{name}: written, not declared" for name in written.keys() - declared.keys()]
    problems += [
        f"{name}: written as {sorted(types)}, declared {declared[name].attr_type}"
        for name, types in written.items()
        if name in declared and types != {declared[name].attr_type}
    ]
    return sorted(problems)


def test_records_write_exactly_what_the_model_declares():
    assert len(ITEMS) > 300
    assert mismatches(AuditLogEvent, ITEMS) == []


def test_each_item_reads_back_through_the_model_unchanged():
    for item in ITEMS:
        assert AuditLogEvent.from_raw_data(item).serialize() == item


def test_the_event_key_is_the_records_event_time_and_id():
    """Built here from the record as CloudTrail wrote it, as docs/pipelines/ingest.md defines the
    key: what the items are written under, and what the model's builder makes for a reader's
    lookup."""
    assert len(RAW) == len(ITEMS)
    for record, item in zip(RAW, ITEMS, strict=True):
        key = f"{record['eventTime']}#{record['eventID']}"
        assert item["event_key"] == {"S": key}
        assert AuditLogEvent.sort_key(record["eventTime"], record["eventID"]) == key
    assert len({item["event_key"]["S"] for item in ITEMS}) == len(ITEMS)


def test_composite_keys_are_the_models():
    for item in ITEMS:
        value = {name: v.get("S") for name, v in item.items()}
        assert value["tenant_account"] == AuditLogEvent.account_key(TENANT, value["account_id"])
        name_key = AuditLogEvent.event_name_key(TENANT, value["event_name"])
        assert value["tenant_event_name"] == name_key
        if "tenant_principal" in value:
            principal = AuditLogEvent.principal_key(TENANT, value["principal_arn"])
            assert value["tenant_principal"] == principal
    assert sum("tenant_principal" in item for item in ITEMS) > len(ITEMS) // 2


class _WiderEvent(AuditLogEvent):
    """The model with an attribute the records do not write."""

    shoe_size = NumberAttribute(null=True)


class _ByRegion(GlobalSecondaryIndex["_IndexedEvent"]):
    class Meta:
        index_name = "by-region"
        projection = AllProjection()

    tenant_region = UnicodeAttribute(hash_key=True)
    event_key = UnicodeAttribute(range_key=True)


class _IndexedEvent(AuditLogEvent):
    """The model with an index keyed by an attribute it does not declare."""

    by_region = _ByRegion()


def _changed(name: str, value: dict[str, str] | None) -> list[dict[str, Any]]:
    """The real items, the first with ``name`` set to ``value`` (None: taken out)."""
    first = {k: v for k, v in ITEMS[0].items() if k != name}
    return [{**first, name: value} if value else first, *ITEMS[1:]]


@pytest.mark.parametrize(
    ("model", "items", "says"),
    [
        (_WiderEvent, ITEMS, "shoe_size: declared, never written"),
        (AuditLogEvent, _changed("shoe_size", {"N": "42"}), "shoe_size: written, not declared"),
        (AuditLogEvent, _changed("read_only", {"S": "true"}), "read_only: written as"),
        (AuditLogEvent, _changed("tenant_event_name", None), "item 0: no tenant_event_name"),
        (_IndexedEvent, ITEMS, "index by-region: key tenant_region undeclared"),
    ],
    ids=["model-only", "records-only", "other-type", "required-missing", "index-key"],
)
def test_negative_control_a_one_sided_change_is_caught(model, items, says):
    problems = mismatches(model, items)
    assert len(problems) == 1 and says in problems[0]
