"""Audit-log items for the benchmarks that read them (`benchmarks.api`, `benchmarks.audit`): real
records with new ids and times, decoded and normalized as ingest does, written straight into
DynamoDB with BatchWriteItem. Import it once the benchmark's environment is set."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from kopter import dynamo
from kopter.cloudtrail import records
from kopter.cloudtrail.ingest import unique_items
from kopter.settings import get_settings
from kopter.tables import AuditLogEvent
from tests.factories import log_records

CHUNK = 5_000  # records decoded and written per task


def seed(
    tenant_id: str,
    account_id: str,
    count: int,
    days: list[datetime],
    pool: list[dict] | None = None,
) -> float:
    """``count`` items, chunk n on ``days[n % len(days)]``, written by 4 threads; returns the
    seconds it took."""
    settings = get_settings()

    def write(n: int) -> int:
        log = log_records(
            min(CHUNK, count - n * CHUNK), account_id, days[n % len(days)], seed=n, pool=pool
        )
        decoded = records.decode(json.dumps({"Records": log}).encode())
        items = unique_items(records.items(decoded.records, tenant_id, "s3://bench/x", None))
        return dynamo.batch_put(AuditLogEvent.Meta.table_name, items, settings)

    began = time.perf_counter()
    with ThreadPoolExecutor(4) as pool_:
        written = sum(pool_.map(write, range((count + CHUNK - 1) // CHUNK)))
    assert written == count, written
    return time.perf_counter() - began
