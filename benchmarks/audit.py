"""`make bench`: the daily audit of one tenant's busy day, on this machine.

100,000 audit-log records on one UTC day (real records: every Stratus Red Team AWS detonation log
and the org-trail sample of tests/fixtures/real/cloudtrail/, drawn at random with new ids and
times), written straight into moto's DynamoDB (``benchmarks.fastmoto``, whose Query costs about
what it reads). Then the day is audited, as the `audit` worker does (``digest.audit_day``: read
page by page, every rule, the digest stored), with all the rules, and beside it with the nine
rules the audit had before issue #20: records per second, and the peak of Python's allocations
during the audit (tracemalloc, a second run: it slows what it measures). Apart, the rules
themselves: the same records already read, through the tally alone.
"""

from __future__ import annotations

import gc
import json
import os
import secrets
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kopter.devstack import LOCAL_AWS_ENV, free_port, spawn, wait_for_port  # noqa: E402

MOTO_PORT = free_port()
os.environ.update(
    {
        **LOCAL_AWS_ENV,
        "KOPTER_AWS_ENDPOINT_URL": f"http://127.0.0.1:{MOTO_PORT}",
        "KOPTER_PREFIX": f"benchau{secrets.token_hex(3)}-",
    }
)

from benchmarks import auditlog  # noqa: E402
from kopter import accounts  # noqa: E402
from kopter.bootstrap import bootstrap  # noqa: E402
from kopter.cloudtrail import digest  # noqa: E402
from kopter.cloudtrail.rules import RULES, Rule  # noqa: E402
from kopter.settings import get_settings  # noqa: E402
from kopter.tables import AuditLogEvent  # noqa: E402
from tests.factories import templates  # noqa: E402
from tests.samples import STRATUS_DIR  # noqa: E402

EVENTS = int(os.environ.get("KOPTER_BENCH_EVENTS", "100000"))
DAY = datetime(2026, 11, 20, tzinfo=UTC)
ACCOUNT = "777777777777"
BEFORE = (
    "root-account-use",
    "console-login-without-mfa",
    "iam-change",
    "security-group-open-to-world",
    "cloudtrail-stopped",
    "cloudtrail-stop-attempt",
    "cloudtrail-changed",
    "snapshot-shared-outside",  # was snapshot-shared-publicly: public only
    "denied-calls-burst",
)


def _load(path: Path) -> list[dict]:
    loaded: list[dict] = json.loads(path.read_text())
    return loaded


def timed(run: Callable[[], object]) -> tuple[float, float]:
    """Seconds of wall and of this process's CPU."""
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return time.perf_counter() - wall, time.process_time() - cpu


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
    moto_argv = [sys.executable, "-m", "benchmarks.fastmoto", "-H", "127.0.0.1", "-p"]
    moto = spawn("moto", [*moto_argv, str(MOTO_PORT)], os.environ, logs, cwd=ROOT)
    try:
        wait_for_port(moto, MOTO_PORT)
        settings = get_settings()
        bootstrap(settings)
        tenant = accounts.add_tenant("bench")
        role = f"arn:aws:iam::{ACCOUNT}:role/kopter"
        accounts.add_account(tenant, accounts.AccountRequest(ACCOUNT, role, ("us-east-1",)))
        pool = templates() + [r for p in sorted(STRATUS_DIR.glob("aws.*.json")) for r in _load(p)]
        seconds = auditlog.seed(tenant.tenant_id, ACCOUNT, EVENTS, [DAY], pool)
        print(
            f"\n{EVENTS:,} records of {DAY:%Y-%m-%d} written to moto's DynamoDB in {seconds:.0f}s"
        )
        events = list(digest.day_events(tenant.tenant_id, DAY.date()))
        assert len(events) == EVENTS, len(events)
        own = frozenset({ACCOUNT})
        before = tuple(r for r in RULES if r.name in BEFORE)
        assert len(before) == len(BEFORE)
        print(
            f"\n   {'':<24} {'audit_day':>10} {'records/s':>10} {'CPU s':>7} {'peak MiB':>9}"
            f" {'rules alone':>12} {'findings':>9}"
        )
        for label, rules in ((f"all {len(RULES)} rules", RULES), ("the 9 rules before", before)):
            audit = lambda rules=rules: digest.audit_day(  # noqa: E731
                tenant.tenant_id, DAY.date(), settings, rules
            )
            wall, cpu = timed(audit)
            peak = peak_mib(audit)
            alone, _ = timed(lambda rules=rules: _tally(events, own, rules))
            findings = int(digest.get_digest(tenant.tenant_id, DAY.date()).findings_total)  # type: ignore[union-attr]
            print(
                f"   {label:<24} {wall:>9.1f}s {EVENTS / wall:>10,.0f} {cpu:>7.1f} {peak:>9.1f}"
                f" {EVENTS / alone:>10,.0f}/s {findings:>9}"
            )
        print(
            "\n   figures only (issue #20 sets no limit). audit_day reads the day from moto's "
            "server, page\n   by page; 'rules alone' is the tally over the same records already "
            "read, in records/s."
        )
        return 0
    finally:
        moto.stop()


def _tally(events: list[AuditLogEvent], own: frozenset[str], rules: tuple[Rule, ...]) -> None:
    tally = digest._Tally(own, rules)
    for event in events:
        tally.add(event)
    tally.reported()


if __name__ == "__main__":
    sys.exit(main())
