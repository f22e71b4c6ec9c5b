"""Writing many items: BatchWriteItem, 25 a call, until DynamoDB has taken every one.

BatchWriteItem can succeed while leaving some items unprocessed (throttled partitions); those are
sent again with exponential backoff and jitter. Throttling errors of the call itself are retried
by botocore's standard retry mode (``kopter.aws``). Items must be idempotent puts: a retry may
write an item twice, which is harmless when its key says what it is.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable
from typing import Any

from kopter import aws
from kopter.errors import KopterError
from kopter.settings import Settings

BATCH = 25
MAX_ROUNDS = 10


class UnprocessedItems(KopterError):
    """DynamoDB kept refusing some items after every retry."""


def batch_put(table: str, items: Iterable[dict[str, Any]], settings: Settings) -> int:
    """Put every item (DynamoDB attribute-value form) into ``table``; return how many."""
    client = aws.client("dynamodb", settings)
    written = 0
    batch: list[dict[str, Any]] = []
    for item in items:
        batch.append({"PutRequest": {"Item": item}})
        if len(batch) == BATCH:
            _write(client, table, batch)
            written += len(batch)
            batch = []
    if batch:
        _write(client, table, batch)
        written += len(batch)
    return written


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
