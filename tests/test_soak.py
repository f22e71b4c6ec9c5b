"""Load held over minutes (`make soak`; not part of `make test`): CloudTrail files arrive at a
steady rate while three `-Q ingest` workers take them. Measured per window: files and records
ingested per second, the queues' depths, each worker's memory (its main process and pool). Held
means every window after the first keeps up with the arrivals, the queues do not grow, and no
worker's memory grows by more than its bound.
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from kopter.devstack import Child
from tests.conftest import Workers, wait_for
from tests.support import chaos
from tests.support.reliability import record

pytestmark = pytest.mark.soak

SECONDS = int(os.environ.get("KOPTER_SOAK_SECONDS", "240"))
WINDOW = 30
FILES_PER_SECOND = float(os.environ.get("KOPTER_SOAK_FILES_PER_SECOND", "2"))
RECORDS_PER_FILE = 250
# Growth of one worker's memory (main process and pool) from the second window to the last.
MEMORY_BOUND_MIB = 64


def _rss_mib(worker: Child) -> float:
    total = 0
    for pid in [worker.process.pid, *chaos.pool_children(worker)]:
        try:
            with open(f"/proc/{pid}/status") as f:
                total += next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
        except (OSError, StopIteration):
            pass
    return total / 1024


@pytest.mark.timeout(SECONDS + 600)
def test_ingest_holds_its_rate_queues_and_memory(workers: Workers):
    estate = chaos.new_estate("soak", 20, seed=41)
    live = [workers.start(f"soak-{n}", "ingest") for n in range(3)]
    for worker in live:
        workers.wait_ready(worker)
    day = datetime(2026, 4, 1, tzinfo=UTC)
    stop = threading.Event()
    errors: list[BaseException] = []

    def arrive() -> None:
        """Files as CloudTrail writes them: uploaded, then announced, at a steady rate."""
        n = 0
        begun = time.monotonic()
        try:
            while not stop.is_set():
                due = begun + n / FILES_PER_SECOND
                stop.wait(max(0.0, due - time.monotonic()))
                first = len(estate.files)
                estate.add_files(1, RECORDS_PER_FILE, day + timedelta(minutes=n), seed=n)
                chaos.notify(chaos.s3_notification(b, k) for b, k in estate.files[first:])
                n += 1
        except BaseException as e:
            errors.append(e)

    items_before = chaos.audit_log_items()
    producer = threading.Thread(target=arrive, daemon=True)
    started = time.monotonic()
    producer.start()
    windows = []
    last_items, last_files = items_before, 0
    while time.monotonic() - started < SECONDS:
        time.sleep(WINDOW)
        items = chaos.audit_log_items()
        arrived = len(estate.files)
        done = len(chaos.ingested(list(estate.files)))
        windows.append(
            {
                "records_per_s": (items - last_items) / WINDOW,
                "files_per_s": (done - last_files) / WINDOW,
                "arrived": arrived,
                "done": done,
                "depth": sum(chaos.depths(("ingest", "cloudtrail-notifications")).values()),
                "rss_mib": [round(_rss_mib(w)) for w in live],
            }
        )
        print(f"{time.monotonic() - started:4.0f}s {windows[-1]}")
        last_items, last_files = items, done
    stop.set()
    producer.join(timeout=60)
    assert not errors, errors
    wait_for(lambda: len(chaos.ingested(estate.files)) == len(estate.files), 120, "the backlog")
    lost = chaos.missing_records(estate.tenant, estate.records)
    stored = chaos.audit_log_items() - items_before

    steady = windows[1:]
    offered = FILES_PER_SECOND
    assert all(w["files_per_s"] >= 0.8 * offered for w in steady), windows
    # A queue that does not keep up grows by a window's arrivals every window.
    assert max(w["depth"] for w in steady) <= offered * 10 + 5, windows
    growth = [steady[-1]["rss_mib"][i] - steady[0]["rss_mib"][i] for i in range(len(live))]
    assert max(growth) <= MEMORY_BOUND_MIB, windows
    assert lost == [] and stored == len(estate.records), (len(lost), stored)
    rates = [w["records_per_s"] for w in steady]
    record(
        f"None: load held for {SECONDS} s",
        f"{FILES_PER_SECOND:g} CloudTrail files/s of {RECORDS_PER_FILE} records arriving, "
        "3 workers x 2 processes",
        lost=len(lost),
        duplicated=stored - len(estate.records),
        files=len(estate.files),
        records_per_s_per_window=f"{min(rates):.0f}-{max(rates):.0f}",
        median_records_per_s=round(statistics.median(rates)),
        deepest_queue=max(w["depth"] for w in steady),
        worker_memory_growth=f"{max(growth)} MiB (bound {MEMORY_BOUND_MIB})",
    )
