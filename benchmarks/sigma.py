"""`make bench`: Sigma rules matched one record at a time, on this machine (figures only).

100,000 real records (the org-trail sample and every Stratus Red Team detonation log of
tests/fixtures/real/cloudtrail/, drawn at random with new ids and times: an attack-heavy mix)
are matched against SigmaHQ's 57 CloudTrail rules as kopter ships them
(``RuleSet(bundled_rules()).matching``), as ingest will match each record it writes: records
per second by wall and by CPU, the best of three runs. Beside it, the same rules tested on every
record without the index, and what ingest already does to each record of the same records (a log
file decoded and normalized into items, ``records.decode`` and ``records.items``), so that the
matching's cost reads against it.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.timing import timed  # noqa: E402
from kopter.cloudtrail import records  # noqa: E402
from kopter.detections.rules import RuleSet  # noqa: E402
from kopter.detections.sigma import bundled_rules  # noqa: E402
from tests.support.factories import log_records, templates  # noqa: E402
from tests.support.samples import STRATUS_DIR  # noqa: E402

EVENTS = int(os.environ.get("KOPTER_BENCH_EVENTS", "100000"))
DAY = datetime(2026, 11, 20, tzinfo=UTC)


def sample() -> list[dict[str, Any]]:
    stratus = [r for p in sorted(STRATUS_DIR.glob("aws.*.json")) for r in json.loads(p.read_text())]
    return log_records(EVENTS, "777777777777", DAY, pool=templates() + stratus)


def main() -> int:
    busy = os.getloadavg()[0]
    print(
        f"kopter bench: Sigma rules   (machine: {os.cpu_count()} cores, python "
        f"{sys.version.split()[0]}, load average {busy:.1f} at the start)"
    )
    log = sample()
    document = json.dumps({"Records": log}).encode()
    rules = RuleSet(bundled_rules())
    matched = sum(len(rules.matching(record)) for record in log)
    print(
        f"\n{len(log):,} real records, {len(rules)} rules; {matched:,} matches "
        f"({sum(1 for record in log if rules.matching(record)):,} records match a rule)"
    )
    print(f"   {'':<40} {'records/s':>10} {'records/CPU s':>14} {'µs/record':>10}")

    def every_record(rule_set: RuleSet) -> Callable[[], object]:
        return lambda: [rule_set.matching(record) for record in log]

    def unindexed() -> object:
        return [[rule for rule in rules.rules if rule.matches(r)] for r in log]

    def ingest() -> object:
        decoded = records.decode(document)
        return list(records.items(decoded.records, "bench", "s3://bench/x", None))

    for label, run in (
        ("RuleSet.matching, every rule", every_record(rules)),
        ("every rule on every record (no index)", unindexed),
        ("ingest's decode + normalize (reference)", ingest),
    ):
        wall, cpu = timed(run)
        print(
            f"   {label:<40} {len(log) / wall:>10,.0f} {len(log) / cpu:>14,.0f}"
            f" {cpu / len(log) * 1e6:>10.1f}"
        )
    print(
        "\n   figures only: the goal (ingest keeps 90 % of its throughput) is measured end to end"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
