"""`make bench`: the EC2 price-list import, measured on this machine beside its limits.

A realistic us-east-1 offer file of 300 MB (benchmarks.offer_file: the real attribute set,
OnDemand and Reserved terms, many OS, tenancy and licence variants) is imported by kopter's own
code, in a fresh process on one core: the file read in 1 MB chunks as from an HTTP response,
streamed into the catalog, and every row written as a DynamoDB item to a local sink (a file of
JSON-encoded items: the bytes a BatchWriteItem would carry). Then the same file again with the
rows of the first import stored (the cost of a new version that changed nothing). Beside them,
`json.load` and ijson on the same file in the same run (benchmarks.pricing_baselines).

Limits (issue #5): at least 100 MB/s of JSON, peak RSS under 150 MB, for the whole import.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.offer_file import write_offer_file  # noqa: E402
from benchmarks.pricing_baselines import measure_all  # noqa: E402

FILE_MB = int(os.environ.get("KOPTER_BENCH_PRICING_MB", "300"))
MIN_MB_PER_S, MAX_RSS_MB = 100, 150

# The measured child: kopter's import into a local sink, twice (the second with the first's
# rows stored), printing one JSON line per import.
_IMPORT = """
import json, resource, sys, time
from datetime import UTC, datetime
from pathlib import Path

import msgspec

from kopter.pricing.catalog import build_catalog
from kopter.pricing.source import open_file
from kopter.pricing.store import store


class LocalSink:
    def __init__(self, path):
        self.out = open(path, "wb")
        self.stored = {}

    def digests(self, region):
        return dict(self.stored)

    def put(self, items):
        encoder, batch, written = msgspec.json.Encoder(), [], 0
        for item in items:
            self.stored[item["price_key"]["S"]] = (item["digest"]["S"], False)
            batch.append(item)
            if len(batch) == 25:
                self.out.write(encoder.encode(batch))
                written += len(batch)
                batch = []
        self.out.write(encoder.encode(batch))
        return written + len(batch)

    def mark_gone(self, region, price_keys, version, now):
        return len(price_keys)


path, sink = Path(sys.argv[1]), LocalSink(sys.argv[2])
for run in ("first", "unchanged"):
    started = time.perf_counter()
    catalog = build_catalog(open_file(path).chunks, "us-east-1")
    stored = store(catalog, sink, catalog.version or "", datetime.now(UTC))
    seconds = time.perf_counter() - started
    print(json.dumps({
        "run": run,
        "seconds": seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rows": len(catalog),
        "written": stored.written,
        "products": catalog.products,
        "duplicates": len(catalog.duplicates),
    }), flush=True)
"""


def main() -> int:
    cores = os.cpu_count()
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    print(f"kopter bench: EC2 price-list import   (machine: {cores} cores, {memory:.1f} GiB)")
    with tempfile.TemporaryDirectory(prefix="kopter-bench-pricing-") as tmp:
        path = Path(tmp) / "index.json"
        started = time.perf_counter()
        facts = write_offer_file(path, FILE_MB * 1_000_000)
        size_mb = facts.bytes_written / 1e6
        print(
            f"   file: {size_mb:,.0f} MB, {facts.products:,} products "
            f"({facts.compute_used_products:,} instances in use), "
            f"{facts.on_demand_terms:,} on-demand and {facts.reserved_terms:,} reserved terms; "
            f"written in {time.perf_counter() - started:.0f}s"
        )
        child = subprocess.run(
            [sys.executable, "-c", _IMPORT, str(path), str(Path(tmp) / "sink.json")],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=600,
        )
        if child.returncode != 0:
            print(child.stderr, file=sys.stderr)
            return 1
        runs = [json.loads(line) for line in child.stdout.splitlines()]
        sink_mb = (Path(tmp) / "sink.json").stat().st_size / 1e6
        baselines = measure_all(path, timeout=300)

    ok = True
    print(f"\n   {'':<34} {'MB/s':>8} {'peak RSS':>10}   limit")
    for run in runs:
        rate = size_mb / run["seconds"]
        meets = rate >= MIN_MB_PER_S and run["peak_rss_mb"] < MAX_RSS_MB
        ok &= meets
        name = "kopter, first import" if run["run"] == "first" else "kopter, same file again"
        print(
            f"   {name:<34} {rate:>8,.0f} {run['peak_rss_mb']:>7,.0f} MB   "
            f">= {MIN_MB_PER_S} MB/s, < {MAX_RSS_MB} MB: {'ok' if meets else 'MISSED'}"
        )
    for b in baselines:
        if b.seconds is None:
            print(f"   {b.kind:<34} {'-':>8} {'-':>10}   {b.note}")
        else:
            print(f"   {b.kind:<34} {b.mb_per_s:>8,.0f} {b.peak_rss_mb:>7,.0f} MB   ({b.note})")
    first, again = runs
    print(
        f"\n   kopter kept {first['rows']:,} prices ({first['duplicates']} duplicate key "
        f"resolved) from {first['products']:,} products; the first import wrote all of them "
        f"({sink_mb:,.0f} MB of DynamoDB items), the same file again wrote {again['written']}."
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
