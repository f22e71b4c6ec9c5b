"""moto's server for `benchmarks.api`, with its Query made to cost about what it reads.

Stock moto sorts every item of the table on every Query, through DynamoType comparisons that
cast each value (9 to 14 s a Query at 100,000 items on a 2-core machine), and then writes the
answer through a serializer that walks the response's shape for every attribute of every item
(half a second for a page of 100 audit events): no DynamoDB does either, and the API's own cost
would not show beside them. Here a table's sorted items are kept until its item count changes,
string keys compare as strings, and a Query's answer is written with json.dumps: the same
answers, byte for byte once parsed, sooner. For the benchmark only (an item replaced by another
of a new key, count unchanged, would leave the kept order stale; the benchmark writes, then
reads).

    python -m benchmarks.fastmoto -H 127.0.0.1 -p PORT
"""

from __future__ import annotations

import json
from typing import Any

from moto.core.responses import ActionResult
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Table
from moto.dynamodb.responses import DynamoHandler

from kopter.motoserver import main

_all_items, _eq, _lt = Table.all_items, DynamoType.__eq__, DynamoType.__lt__
_serialized = DynamoHandler.serialized
_kept: dict[int, tuple[int, list[Any]]] = {}


def all_items(self: Table) -> list[Any]:
    count = len(self)
    kept = _kept.get(id(self))
    if kept is None or kept[0] != count:
        kept = _kept[id(self)] = (count, _all_items(self))
    return list(kept[1])


def eq(self: DynamoType, other: DynamoType) -> bool:
    if self.type == "S" and other.type == "S":
        return bool(self.value == other.value)
    return _eq(self, other)


def lt(self: DynamoType, other: DynamoType) -> bool:
    if self.type == "S" and other.type == "S":
        return bool(self.value < other.value)
    return _lt(self, other)


def serialized(self: DynamoHandler, action: ActionResult) -> Any:
    if self._get_action() == "Query" and isinstance(action.result, dict):
        try:
            body = json.dumps(action.result)
        except TypeError:  # binary attributes: the serializer base64-encodes them
            return _serialized(self, action)
        return 200, {"Content-Type": "application/x-amz-json-1.0", **self.response_headers}, body
    return _serialized(self, action)


Table.all_items = all_items  # type: ignore[method-assign]
DynamoType.__eq__ = eq  # type: ignore[method-assign,assignment]
DynamoType.__lt__ = lt  # type: ignore[method-assign]
DynamoHandler.serialized = serialized  # type: ignore[method-assign]

if __name__ == "__main__":
    main()
