"""What AWS would bill for the requests a RecordingProxy saw: SQS requests (a 64 KB chunk of
payload is one), DynamoDB read and write request units and the bytes the written items keep, by
AWS's own rules for each (item sizes as DynamoDB counts them, 1 KB a write unit, 4 KB a read unit,
half for an eventually consistent read, twice for a transaction, a write again for each global
secondary index the item is in). The recount of `kopter deploy cost`'s per-unit figures
(``kopter/deploy/usage.py``) is made of these.

moto returns no consumed capacity worth the name (a fixed 1 or 0.5 whatever the item), so the
units are computed here from the items: those in the request, those in the answer, and, where
neither holds the whole item (an update, a read with a projection), the item as it is in moto
once the phase is over.
"""

from __future__ import annotations

import base64
import json
import math
import re
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from kopter.tables.definitions import TableDefinition, definitions
from tests.support.proxy import Answered

CHUNK = 64 * 1024  # SQS bills each 64 KB of a request's payload as one request
WRITE_UNIT, READ_UNIT = 1024, 4096
ITEM_OVERHEAD = 100  # bytes DynamoDB adds to each stored item and index entry

Item = dict[str, Any]
Fetch = Callable[[str, Item], Item | None]  # (table, key) -> the item as stored now


def attribute_size(value: dict[str, Any]) -> int:
    """The size of one typed value as DynamoDB counts it (its name is counted by the caller)."""
    [(kind, inner)] = value.items()
    if kind == "S":
        return len(inner.encode())
    if kind == "N":
        digits = inner.lstrip("-").replace(".", "").strip("0") or "0"
        return math.ceil(len(digits) / 2) + 1
    if kind == "B":
        return len(base64.b64decode(inner))
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(s.encode()) for s in inner)
    if kind == "NS":
        return sum(attribute_size({"N": n}) for n in inner)
    if kind == "BS":
        return sum(len(base64.b64decode(b)) for b in inner)
    if kind == "L":
        return 3 + sum(attribute_size(v) + 1 for v in inner)
    if kind == "M":
        return 3 + sum(len(k.encode()) + attribute_size(v) + 1 for k, v in inner.items())
    raise ValueError(f"unknown DynamoDB type {kind}")


def item_size(item: Item) -> int:
    return sum(len(name.encode()) + attribute_size(value) for name, value in item.items())


@dataclass
class Metered:
    """What one phase of work cost, as AWS bills it."""

    sqs_requests: Counter[str] = field(default_factory=Counter)  # by queue
    sqs_actions: Counter[str] = field(default_factory=Counter)  # by action
    sent: Counter[str] = field(default_factory=Counter)  # messages sent, by queue
    deleted: Counter[str] = field(default_factory=Counter)  # messages deleted, by queue
    receives: Counter[str] = field(default_factory=Counter)  # receives that brought messages
    empty_receives: Counter[str] = field(default_factory=Counter)
    largest_message: int = 0
    wru: Counter[str] = field(default_factory=Counter)  # by table
    rru: Counter[str] = field(default_factory=Counter)
    stored: Counter[str] = field(default_factory=Counter)  # bytes of the items written, by table
    items: Counter[str] = field(default_factory=Counter)  # items written, by table
    other: Counter[str] = field(default_factory=Counter)  # service:operation of anything else

    def sqs(self, queues: Iterable[str] | None = None) -> float:
        return sum(v for q, v in self.sqs_requests.items() if queues is None or q in queues)

    def writes(self, tables: Iterable[str] | None = None) -> float:
        return sum(v for t, v in self.wru.items() if tables is None or t in tables)

    def reads(self, tables: Iterable[str] | None = None) -> float:
        return sum(v for t, v in self.rru.items() if tables is None or t in tables)


class Meter:
    """Turns recorded requests into what AWS bills: kopter's own queues and tables, named under
    ``prefix``; ``fetch`` reads an item as it is now, for what neither request nor answer show
    whole."""

    def __init__(self, prefix: str, fetch: Fetch) -> None:
        self.prefix = prefix
        self.fetch = fetch
        self.tables = {d.base_name: d for d in definitions()}

    def measure(self, answers: Iterable[Answered]) -> Metered:
        metered = Metered()
        written: dict[tuple[str, str], Item] = {}  # (table, key) -> key, for the items' sizes
        for answer in answers:
            headers = {k.lower(): v for k, v in answer.request.headers.items()}
            target = headers.get("x-amz-target", "")
            credential = re.search(
                r"Credential=[^/]+/\d{8}/[\w-]+/([\w-]+)/", headers.get("authorization", "")
            )
            service = credential.group(1) if credential else ""
            if target.startswith("DynamoDB_"):
                self._dynamodb(target.rsplit(".", 1)[-1], answer, metered, written)
            elif service == "sqs":
                self._sqs(target, answer, metered)
            else:
                metered.other[f"{service}:{_action(answer, target)}"] += 1
        for (table, _), key in written.items():
            definition = self.tables.get(table)
            item = self.fetch(self.prefix + table, key) if definition else None
            if item is not None and definition is not None:
                metered.stored[table] += stored_size(definition, item)
                metered.items[table] += 1
        return metered

    # --- SQS ------------------------------------------------------------------------------------

    def _sqs(self, target: str, answer: Answered, metered: Metered) -> None:
        request = answer.request
        if target:
            action = target.rsplit(".", 1)[-1]
            params = json.loads(request.body or b"{}")
        else:
            form = {k: v[0] for k, v in parse_qs(request.body.decode(errors="replace")).items()}
            action, params = form.get("Action", "?"), form
        queue = self._queue(params.get("QueueUrl") or params.get("QueueName") or "")
        chunks = max(1, math.ceil(max(len(request.body), len(answer.body)) / CHUNK))
        metered.sqs_requests[queue] += chunks
        metered.sqs_actions[action] += chunks
        if action == "SendMessage":
            metered.sent[queue] += 1
            metered.largest_message = max(metered.largest_message, len(request.body))
        elif action == "SendMessageBatch":
            entries = params.get("Entries") or [
                k for k in params if re.fullmatch(r"SendMessageBatchRequestEntry\.\d+\.Id", k)
            ]
            metered.sent[queue] += len(entries)
            metered.largest_message = max(metered.largest_message, len(request.body))
        elif action == "DeleteMessage":
            metered.deleted[queue] += 1
        elif action == "DeleteMessageBatch":
            entries = params.get("Entries") or [
                k for k in params if re.fullmatch(r"DeleteMessageBatchRequestEntry\.\d+\.Id", k)
            ]
            metered.deleted[queue] += len(entries)
        elif action == "ReceiveMessage":
            if _received(answer.body):
                metered.receives[queue] += 1
            else:
                metered.empty_receives[queue] += 1

    def _queue(self, url_or_name: str) -> str:
        name = url_or_name.rstrip("/").rsplit("/", 1)[-1]
        return name.removeprefix(self.prefix)

    # --- DynamoDB -------------------------------------------------------------------------------

    def _dynamodb(
        self, operation: str, answer: Answered, metered: Metered, written: dict[Any, Item]
    ) -> None:
        params = json.loads(answer.request.body or b"{}")
        body = json.loads(answer.body or b"{}") if answer.status == 200 else {}
        if operation in ("PutItem", "UpdateItem", "DeleteItem"):
            table = self._table(params["TableName"])
            key = params.get("Key") or self._key(table, params["Item"])
            self._write(table, key, params.get("Item"), operation, metered, written)
        elif operation == "BatchWriteItem":
            for name, requests in params["RequestItems"].items():
                table = self._table(name)
                for r in requests:
                    if "PutRequest" in r:
                        item = r["PutRequest"]["Item"]
                        self._write(
                            table, self._key(table, item), item, "PutItem", metered, written
                        )
                    else:
                        key = r["DeleteRequest"]["Key"]
                        self._write(table, key, None, "DeleteItem", metered, written)
        elif operation == "TransactWriteItems":
            for entry in params["TransactItems"]:
                [(kind, spec)] = entry.items()
                table = self._table(spec["TableName"])
                if kind == "ConditionCheck":
                    metered.wru[table] += 2
                    continue
                key = spec.get("Key") or self._key(table, spec["Item"])
                operation = {"Put": "PutItem", "Update": "UpdateItem"}.get(kind, "DeleteItem")
                self._write(table, key, spec.get("Item"), operation, metered, written, factor=2)
        elif operation == "GetItem":
            table = self._table(params["TableName"])
            item = body.get("Item")
            if item is not None and _projected(params):
                item = self.fetch(params["TableName"], params["Key"]) or item
            metered.rru[table] += _read_units([item] if item else [], params)
        elif operation == "BatchGetItem":
            for name, spec in params["RequestItems"].items():
                table = self._table(name)
                found = body.get("Responses", {}).get(name, [])
                if _projected(spec):
                    found = [self.fetch(name, self._key(table, i)) or i for i in found]
                missing = len(spec["Keys"]) - len(found)
                per_item = sum(_read_units([i], spec) for i in found)
                metered.rru[table] += per_item + missing * _read_units([], spec)
        elif operation in ("Query", "Scan"):
            table = self._table(params["TableName"])
            found = body.get("Items", [])
            if _projected(params):
                found = [self.fetch(params["TableName"], self._key(table, i)) or i for i in found]
            scanned, count = body.get("ScannedCount", len(found)), len(found)
            units = _read_units(found, params)
            if scanned > count and count:  # filtered out after being read: billed as read
                units = _read_units(found, params, scale=scanned / count)
            metered.rru[table] += units
        elif operation == "TransactGetItems":
            for entry, got in zip(params["TransactItems"], body.get("Responses", []), strict=False):
                table = self._table(entry["Get"]["TableName"])
                metered.rru[table] += 2 * _read_units([got.get("Item", {})], {"ConsistentRead": 1})
        else:
            metered.other[f"dynamodb:{operation}"] += 1

    def _write(
        self,
        table: str,
        key: Item,
        item: Item | None,
        operation: str,
        metered: Metered,
        written: dict[Any, Item],
        factor: int = 1,
    ) -> None:
        definition = self.tables.get(table)
        if item is None and operation == "UpdateItem":
            item = self.fetch(self.prefix + table, key)
        if item is None:  # a delete: DynamoDB bills the deleted item's size, gone by now
            metered.wru[table] += factor * (1 + len(definition.indexes if definition else []))
            return
        size = item_size(item)
        units = math.ceil(size / WRITE_UNIT) or 1
        for index in definition.indexes if definition else []:
            if all(k["AttributeName"] in item for k in index.key_schema):
                units += math.ceil(_projected_size(definition, index, item) / WRITE_UNIT) or 1
        metered.wru[table] += factor * units
        written[(table, json.dumps(key, sort_keys=True))] = key

    def _table(self, name: str) -> str:
        return name.removeprefix(self.prefix)

    def _key(self, table: str, item: Item) -> Item:
        definition = self.tables[table]
        return {k["AttributeName"]: item[k["AttributeName"]] for k in definition.key_schema}


def stored_size(definition: TableDefinition, item: Item) -> int:
    """What an item keeps in a table and its indexes, overhead included."""
    total = item_size(item) + ITEM_OVERHEAD
    for index in definition.indexes:
        if all(k["AttributeName"] in item for k in index.key_schema):
            total += _projected_size(definition, index, item) + ITEM_OVERHEAD
    return total


def _projected_size(definition: TableDefinition, index: Any, item: Item) -> int:
    projection = index.projection.get("ProjectionType", "ALL")
    if projection == "ALL":
        return item_size(item)
    keep = {k["AttributeName"] for k in (*definition.key_schema, *index.key_schema)}
    if projection == "INCLUDE":
        keep |= set(index.projection.get("NonKeyAttributes", []))
    return item_size({k: v for k, v in item.items() if k in keep})


def _projected(params: dict[str, Any]) -> bool:
    return bool(params.get("ProjectionExpression") or params.get("AttributesToGet"))


def _read_units(items: list[Item], params: dict[str, Any], scale: float = 1.0) -> float:
    """Read request units of one read: the items' sizes together, in 4 KB, at least one unit;
    half when eventually consistent (DynamoDB's default)."""
    units = max(1, math.ceil(sum(item_size(i) for i in items) * scale / READ_UNIT))
    return units if params.get("ConsistentRead") else units / 2


def _received(body: bytes) -> bool:
    """Whether a ReceiveMessage answer (JSON or XML) holds a message."""
    text = body.strip()
    if text.startswith(b"{"):
        return bool(json.loads(text).get("Messages"))
    try:
        root = ET.fromstring(text)
    except ET.ParseError:
        return False
    return any(e.tag.rsplit("}", 1)[-1] == "Message" for e in root.iter())


def _action(answer: Answered, target: str) -> str:
    if target:
        return target.rsplit(".", 1)[-1]
    form = parse_qs(answer.request.body.decode(errors="replace"))
    return form.get("Action", [answer.request.method])[0]
