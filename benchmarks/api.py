"""`make bench`: the read API's `GET /v1/audit/aws?limit=100`, on this machine.

A tenant with 100,000 audit-log events (the real samples of tests/fixtures/real/cloudtrail/
with new ids and times, written straight into DynamoDB with BatchWriteItem) is read through
`kopter api` (uvicorn, one process) by `benchmarks.loadgen`, another process on 127.0.0.1 that
asks for the newest page of 100 and the next (through its cursor), in turn. Beside it, the bare
DynamoDB Query each page wraps (the same key condition, Limit 100, the same start key), one after
the other from here.

DynamoDB is moto's server, run by `benchmarks.fastmoto`: stock moto sorts the whole table on
every Query (9 to 14 s at 100,000 items here), which would hide the API's own cost entirely.
Deeper pages cost moto more (it walks to the start key), so the two newest pages are measured.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import jwt  # noqa: E402

from kopter import accounts, aws, dynamo  # noqa: E402
from kopter.bootstrap import bootstrap  # noqa: E402
from kopter.cloudtrail import records  # noqa: E402
from kopter.cloudtrail.ingest import unique_items  # noqa: E402
from kopter.devstack import LOCAL_AWS_ENV, free_port, spawn, wait_for_port  # noqa: E402
from kopter.settings import get_settings  # noqa: E402
from kopter.tables import AuditLogEvent, bind  # noqa: E402
from tests.support.factories import log_records  # noqa: E402

MOTO_PORT = free_port()
os.environ.update(
    {
        **LOCAL_AWS_ENV,
        "KOPTER_AWS_ENDPOINT_URL": f"http://127.0.0.1:{MOTO_PORT}",
        "KOPTER_PREFIX": f"bencha{secrets.token_hex(3)}-",
    }
)

EVENTS = int(os.environ.get("KOPTER_BENCH_EVENTS", "100000"))
CHUNK = 5_000  # records decoded and written per seeding task
PAGE = 100
SECONDS = 30  # each load run
CONCURRENCY = (1, 4)
BARE_QUERIES = 60


def seed(tenant_id: str, account_id: str) -> float:
    """EVENTS items over 30 days, written by 4 threads; returns the seconds it took."""
    settings = get_settings()
    table = AuditLogEvent.Meta.table_name
    start = datetime(2026, 3, 1, tzinfo=UTC)

    def write(n: int) -> int:
        day = start + timedelta(days=n % 30)
        log = log_records(min(CHUNK, EVENTS - n * CHUNK), account_id, day, seed=n)
        decoded = records.decode(json.dumps({"Records": log}).encode())
        items = unique_items(records.items(decoded.records, tenant_id, "s3://bench/x", None))
        return dynamo.batch_put(table, items, settings)

    began = time.perf_counter()
    with ThreadPoolExecutor(4) as pool:
        written = sum(pool.map(write, range((EVENTS + CHUNK - 1) // CHUNK)))
    assert written == EVENTS, written
    return time.perf_counter() - began


def bare_queries(tenant_id: str) -> dict[str, float]:
    """The Query behind each page, one after the other: the newest page and the next, in turn."""
    client = aws.client("dynamodb", get_settings())
    latencies = []
    start_key = None
    for _ in range(BARE_QUERIES):
        request = {
            "TableName": AuditLogEvent.Meta.table_name,
            "KeyConditionExpression": "tenant_id = :t",
            "ExpressionAttributeValues": {":t": {"S": tenant_id}},
            "ScanIndexForward": False,
            "Limit": PAGE,
            **({"ExclusiveStartKey": start_key} if start_key else {}),
        }
        began = time.perf_counter()
        page = client.query(**request)
        latencies.append((time.perf_counter() - began) * 1000)
        assert len(page["Items"]) == PAGE
        start_key = None if start_key else page["LastEvaluatedKey"]
    latencies.sort()
    took = sum(latencies) / 1000
    return {
        "rate": len(latencies) / took,
        "p50": latencies[len(latencies) // 2],
        "p99": latencies[int(0.99 * len(latencies))],
    }


def load(port: int, concurrency: int, bearer: str) -> dict[str, object]:
    argv = [
        sys.executable,
        "-m",
        "benchmarks.loadgen",
        str(port),
        f"/v1/audit/aws?limit={PAGE}",
        str(concurrency),
        str(SECONDS),
    ]
    out = subprocess.run(
        argv,
        env={**os.environ, "KOPTER_BENCH_TOKEN": bearer},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result: dict[str, object] = json.loads(out)
    return result


def main() -> int:
    cores = os.cpu_count()
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    busy = os.getloadavg()[0]  # other work on the machine slows moto and the API alike
    print(
        f"kopter bench: read API   (machine: {cores} cores, {memory:.1f} GiB, "
        f"python {sys.version.split()[0]}, load average {busy:.1f} at the start)"
    )
    logs = Path(tempfile.mkdtemp(prefix="kopter-bench-api-"))
    moto_argv = [sys.executable, "-m", "benchmarks.fastmoto", "-H", "127.0.0.1", "-p"]
    moto = spawn("moto", [*moto_argv, str(MOTO_PORT)], os.environ, logs, cwd=ROOT)
    api = None
    try:
        wait_for_port(moto, MOTO_PORT)
        settings = get_settings()
        bind(settings)
        bootstrap(settings)
        identity = f"us-east-1:{secrets.token_hex(8)}"
        accounts.add_tenant("bench", identity)
        seconds = seed(identity, "777777777777")
        print(
            f"\n{EVENTS:,} audit events of one tenant written to moto's DynamoDB in "
            f"{seconds:.0f}s ({EVENTS / seconds:,.0f} items/s, BatchWriteItem, 4 threads)"
        )
        key = secrets.token_urlsafe(32)
        port = free_port()
        env = {
            **os.environ,
            "KOPTER_API_AUTH": "jwt",
            "KOPTER_API_JWT_ALGORITHM": "HS256",
            "KOPTER_API_JWT_KEY": key,
            "KOPTER_API_CURSOR_KEY": secrets.token_urlsafe(32),
        }
        argv = [sys.executable, "-m", "kopter", "api", "--port", str(port)]
        api = spawn("api", argv, env, logs, cwd=ROOT)
        wait_for_port(api, port)
        bearer = jwt.encode({"sub": identity, "exp": int(time.time()) + 3600}, key, "HS256")

        bare = bare_queries(identity)
        print(
            f"\nGET /v1/audit/aws?limit={PAGE}: the newest page and the next, in turn, {SECONDS}s "
            "a run\n(kopter api: one uvicorn process; the load generator: another process)"
        )
        print(f"   {'':<34} {'requests/s':>10} {'p50 ms':>8} {'p99 ms':>8}")
        print(
            f"   {'bare DynamoDB Query, 1 at a time':<34} {bare['rate']:>10.1f} "
            f"{bare['p50']:>8.1f} {bare['p99']:>8.1f}"
        )
        ok = True
        for concurrency in CONCURRENCY:
            result = load(port, concurrency, bearer)
            rate = int(result["requests"]) / float(result["seconds"])  # type: ignore[call-overload]
            label = f"API, {concurrency} connection{'s' if concurrency > 1 else ''}"
            print(f"   {label:<34} {rate:>10.1f} {result['p50']:>8} {result['p99']:>8}")
            if result["failures"]:
                ok = False
                print(f"   FAILED requests: {result['failures']}")
        print(
            "\n   no limit is set for these (issue #7 asks for the figures); moto's Query, not "
            "DynamoDB's,\n   sets their scale: compare the API with the bare Query beside it."
        )
        return 0 if ok else 1
    finally:
        if api:
            api.stop()
        moto.stop()


if __name__ == "__main__":
    sys.exit(main())
