"""`make bench`: the daily audit of one tenant's busy day, on this machine.

100,000 audit-log records of one UTC day: real records (every Stratus Red Team AWS detonation log
and the org-trail sample of tests/fixtures/real/cloudtrail/, drawn at random with new ids and
times: an attack-heavy day, most records matching a rule), decoded and normalized as ingest
does, as DynamoDB items. The day is audited as the `audit` worker does
(``digest.audit_events``: each item made a model as a Query page's are, its rules, the digest
built and stored in moto's DynamoDB) with the rules it runs (those that count over the day: the
others judge each record at ingest), and beside it with all of kopter's rules, as it ran them
before issue #24: records per second and CPU seconds, then the peak of Python's
allocations during the audit (tracemalloc, in another run: it slows what it measures). The
best of three runs: the machine is shared.

The reads are left out: moto's server filters and sorts the whole table for every page of a
Query, so a 100,000-record day there costs it tens of minutes, nothing like DynamoDB's; they
are the same whatever the rules.
"""

from __future__ import annotations

import gc
import json
import os
import secrets
import sys
import tempfile
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.timing import timed  # noqa: E402
from kopter import accounts  # noqa: E402
from kopter.bootstrap import bootstrap  # noqa: E402
from kopter.cloudtrail import digest, records  # noqa: E402
from kopter.cloudtrail.rules import RULES  # noqa: E402
from kopter.devstack import LOCAL_AWS_ENV, free_port, spawn, wait_for_port  # noqa: E402
from kopter.settings import get_settings  # noqa: E402
from kopter.tables import AuditLogEvent, bind  # noqa: E402
from tests.support.factories import log_records, templates  # noqa: E402
from tests.support.samples import STRATUS_DIR  # noqa: E402

MOTO_PORT = free_port()
os.environ.update(
    {
        **LOCAL_AWS_ENV,
        "KOPTER_AWS_ENDPOINT_URL": f"http://127.0.0.1:{MOTO_PORT}",
        "KOPTER_PREFIX": f"benchau{secrets.token_hex(3)}-",
    }
)

EVENTS = int(os.environ.get("KOPTER_BENCH_EVENTS", "100000"))
DAY = datetime(2026, 11, 20, tzinfo=UTC)
ACCOUNT = "777777777777"


def day_items(tenant_id: str) -> list[dict[str, Any]]:
    pool = templates() + [r for p in sorted(STRATUS_DIR.glob("aws.*.json")) for r in _load(p)]
    log = log_records(EVENTS, ACCOUNT, DAY, pool=pool)
    decoded = records.decode(json.dumps({"Records": log}).encode())
    return list(records.items(decoded.records, tenant_id, "s3://bench/x", None))


def _load(path: Path) -> list[dict[str, Any]]:
    loaded: list[dict[str, Any]] = json.loads(path.read_text())
    return loaded


def peak_mib(run: Callable[[], object]) -> float:
    gc.collect()
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def main() -> int:
    cores = os.cpu_count()
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    busy = os.getloadavg()[0]
    print(
        f"kopter bench: daily audit   (machine: {cores} cores, {memory:.1f} GiB, "
        f"python {sys.version.split()[0]}, load average {busy:.1f} at the start)"
    )
    logs = Path(tempfile.mkdtemp(prefix="kopter-bench-audit-"))
    moto_argv = [sys.executable, "-m", "kopter.motoserver", "-H", "127.0.0.1", "-p"]
    moto = spawn("moto", [*moto_argv, str(MOTO_PORT)], os.environ, logs, cwd=ROOT)
    try:
        wait_for_port(moto, MOTO_PORT)
        settings = get_settings()
        bind(settings)
        bootstrap(settings)
        tenant = accounts.add_tenant("bench")
        role = f"arn:aws:iam::{ACCOUNT}:role/kopter"
        accounts.add_account(tenant, accounts.AccountRequest(ACCOUNT, role, ("us-east-1",)))
        items = day_items(tenant.tenant_id)
        print(f"\na day of {len(items):,} audit-log records ({DAY:%Y-%m-%d}), one tenant")
        print(
            f"   {'':<22} {'records/s':>10} {'CPU s':>7} {'records/CPU s':>14}"
            f" {'peak MiB':>9} {'findings':>9}"
        )
        windowed = digest.WINDOWED
        for label, rules in (
            (f"its {len(windowed)} rules", windowed),
            (f"all {len(RULES)} of kopter's", RULES),
        ):

            def audit(rules: tuple[Any, ...] = rules) -> digest.DayAudit:
                events = (AuditLogEvent.from_raw_data(item) for item in items)
                return digest.audit_events(tenant.tenant_id, DAY.date(), events, settings, rules)

            wall, cpu = timed(audit)
            peak = peak_mib(audit)
            findings = len(audit().findings)
            print(
                f"   {label:<22} {len(items) / wall:>10,.0f} {cpu:>7.1f}"
                f" {len(items) / cpu:>14,.0f} {peak:>9.1f} {findings:>9}"
            )
        print(
            "\n   figures only (issue #20 sets no limit); the day's reads from DynamoDB are not "
            "in them."
        )
        return 0
    finally:
        moto.stop()


if __name__ == "__main__":
    sys.exit(main())
