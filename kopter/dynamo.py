"""kopter's DynamoDB idioms: conditional writes, and many items at once.

A conditional write that DynamoDB refuses because its condition does not hold is an answer, not
an error: ``put_if_absent``, ``update_if`` and ``delete_if`` say whether they wrote, and
``condition_failed`` tells that refusal from the others (throttling, a conflicting transaction).

Many items at once: BatchWriteItem (puts or deletes), 25 a call, until DynamoDB has taken
every one, and BatchGetItem, 100 keys a call, until it has answered for every key.

Either call can succeed while leaving some items or keys unprocessed (throttled partitions); those
are sent again with exponential backoff and jitter. Throttling errors of the call itself are retried
by botocore's standard retry mode (``kopter.aws``). Items must be idempotent puts: a retry may
write an item twice, which is harmless when its key says what it is.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable, Sequence
from typing import Any

from pynamodb.exceptions import (
    DeleteError,
    PutError,
    PynamoDBException,
    TransactWriteError,
    UpdateError,
)
from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action
from pynamodb.models import Model

from kopter import aws
from kopter.errors import KopterError
from kopter.settings import Settings

BATCH = 25
BATCH_GET = 100
MAX_ROUNDS = 10


class UnprocessedItems(KopterError):
    """DynamoDB kept refusing some items after every retry."""


def condition_failed(error: PynamoDBException) -> bool:
    """Whether DynamoDB refused a write because its condition did not hold. A transaction is
    cancelled for that only when one of its items' conditions failed, not for a conflict with
    another transaction or throttling, which DynamoDB also reports as a cancellation."""
    reasons = error.cancellation_reasons if isinstance(error, TransactWriteError) else None
    if not reasons:
        return error.cause_response_code == "ConditionalCheckFailedException"
    return any(r is not None and r.code == "ConditionalCheckFailed" for r in reasons)


def put_if_absent(item: Model) -> bool:
    """Put ``item`` unless an item with its key exists: whether it was put."""
    key = item._range_key_attribute() or item._hash_key_attribute()
    try:
        item.save(condition=key.does_not_exist())
    except PutError as e:
        if condition_failed(e):
            return False
        raise
    return True


def update_if(item: Model, actions: Sequence[Action], condition: Condition) -> bool:
    """Update ``item`` if ``condition`` holds: whether it was updated."""
    try:
        item.update(actions=list(actions), condition=condition)
    except UpdateError as e:
        if condition_failed(e):
            return False
        raise
    return True


def delete_if(item: Model, condition: Condition) -> bool:
    """Delete ``item`` if ``condition`` holds: whether it was deleted."""
    try:
        item.delete(condition=condition)
    except DeleteError as e:
        if condition_failed(e):
            return False
        raise
    return True


def batch_put(table: str, items: Iterable[dict[str, Any]], settings: Settings) -> int:
    """Put every item (DynamoDB attribute-value form) into ``table``; return how many."""
    return _batch_write(table, ({"PutRequest": {"Item": item}} for item in items), settings)


def batch_delete(table: str, keys: Iterable[dict[str, Any]], settings: Settings) -> int:
    """Delete every item of ``keys`` (attribute-value form) from ``table``; return how many.
    Deleting an item that is gone already is no error, so a run may be repeated."""
    return _batch_write(table, ({"DeleteRequest": {"Key": key}} for key in keys), settings)


def _batch_write(table: str, requests: Iterable[dict[str, Any]], settings: Settings) -> int:
    client = aws.client("dynamodb", settings)
    sent = 0
    batch: list[dict[str, Any]] = []
    for request in requests:
        batch.append(request)
        if len(batch) == BATCH:
            _write(client, table, batch)
            sent += len(batch)
            batch = []
    if batch:
        _write(client, table, batch)
        sent += len(batch)
    return sent


def batch_get(
    table: str,
    keys: list[dict[str, Any]],
    settings: Settings,
    projection: list[str] | None = None,
) -> list[dict[str, Any]]:
    """The items of ``keys`` (attribute-value form, no duplicates) that exist, in no order;
    ``projection`` names the attributes to read."""
    client = aws.client("dynamodb", settings)
    request: dict[str, Any] = {}
    if projection:
        request["ProjectionExpression"] = ", ".join(f"#p{i}" for i in range(len(projection)))
        request["ExpressionAttributeNames"] = {f"#p{i}": name for i, name in enumerate(projection)}
    found: list[dict[str, Any]] = []
    for start in range(0, len(keys), BATCH_GET):
        pending = {table: {**request, "Keys": keys[start : start + BATCH_GET]}}
        for attempt in range(MAX_ROUNDS):
            response = client.batch_get_item(RequestItems=pending)
            found.extend(response["Responses"].get(table, []))
            pending = response.get("UnprocessedKeys") or {}
            if not pending:
                break
            time.sleep(min(5.0, 0.05 * 2**attempt) * random.uniform(0.5, 1.0))
        else:
            left = sum(len(v["Keys"]) for v in pending.values())
            raise UnprocessedItems(f"{left} keys unprocessed by {table} after {MAX_ROUNDS} tries")
    return found


def _write(client: Any, table: str, requests: list[dict[str, Any]]) -> None:
    pending = {table: requests}
    for attempt in range(MAX_ROUNDS):
        response = client.batch_write_item(RequestItems=pending)
        pending = response.get("UnprocessedItems") or {}
        if not pending:
            return
        time.sleep(min(5.0, 0.05 * 2**attempt) * random.uniform(0.5, 1.0))
    left = sum(len(v) for v in pending.values())
    raise UnprocessedItems(f"{left} items still unprocessed by {table} after {MAX_ROUNDS} tries")
