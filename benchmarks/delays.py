"""`make bench`: where a spread fan-out's delayed tasks wait, in workers or in SQS.

The hourly describer spreads its (account, region) tasks over KOPTER_DESCRIBE_SPREAD_SECONDS with
countdowns. Before: each went to SQS undelayed, a worker received it at once and held it,
unacknowledged, until due, its visibility renewed by the visibility keeper. Now: SQS holds it
(DelaySeconds), and a worker receives it when due. `KOPTER_BENCH_DELAY_TASKS` tasks (default
400: 100 accounts x 4 regions) spread over 60 s by the describer's hash go to one real `celery
worker` (2 processes), once each way; SQS's own counts, sampled every half second, say how many
messages the worker held (in flight) and how many waited in SQS (delayed), and a proxy counts
the worker's ChangeMessageVisibility calls. The visibility timeout is 30 s here (the keeper
renews every 10 s), so that renewals happen within the run. Then the same for 5,000 accounts x
4 regions with the production defaults (spread 300 s, visibility timeout 1,800 s).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kopter import aws, devstack, queues  # noqa: E402
from kopter.bootstrap import bootstrap  # noqa: E402
from kopter.settings import get_settings  # noqa: E402
from kopter.tables import bind  # noqa: E402
from tests.support.proxy import RecordingProxy  # noqa: E402

MOTO_PORT, REDIS_PORT = devstack.free_port(), devstack.free_port()
VISIBILITY = 30
SPREAD = 60
os.environ.update(
    {
        **devstack.LOCAL_AWS_ENV,
        "KOPTER_AWS_ENDPOINT_URL": f"http://127.0.0.1:{MOTO_PORT}",
        "KOPTER_REDIS_URL": f"redis://127.0.0.1:{REDIS_PORT}/0",
        "KOPTER_PREFIX": f"benchq{secrets.token_hex(3)}-",
        "KOPTER_VISIBILITY_TIMEOUT": str(VISIBILITY),
        "KOPTER_TASK_TIME_LIMIT": "20",
    }
)

TASKS = int(os.environ.get("KOPTER_BENCH_DELAY_TASKS", "400"))
PROCESSES = 2
# Production: 5,000 accounts x 4 regions, the defaults of the spread and visibility timeout.
SCALE_TASKS, SCALE_SPREAD, SCALE_VISIBILITY = 20_000, 300, 1800


def _offsets(n: int, spread: int) -> list[int]:
    """The describer's spread (tasks/describer.py): a stable hash of account and region."""
    return [
        int(hashlib.sha256(f"{100000000000 + i // 4}/r{i % 4}".encode()).hexdigest(), 16) % spread
        for i in range(n)
    ]


def run(label: str, app: str, stock: bool, logs: Path) -> dict[str, float]:
    from tests.support.harness import slow

    settings = get_settings()
    sqs = aws.client("sqs", get_settings())
    url = sqs.get_queue_url(QueueName=queues.sqs_name(settings, "audit"))["QueueUrl"]
    key = f"bench-delays:{label}"
    with RecordingProxy(MOTO_PORT) as proxy:
        env = {**os.environ, "KOPTER_AWS_ENDPOINT_URL": proxy.url}
        argv = [sys.executable, "-m", "celery", "-A", app, "worker", "-Q", "audit"]
        argv += ["-c", str(PROCESSES), "-n", f"{label}@%h", "-l", "INFO"]
        worker = devstack.spawn(f"worker-{label}", argv, env, logs, cwd=ROOT)
        try:
            devstack.wait_for_line(worker, " ready.", 120)
            started = time.monotonic()
            for offset in _offsets(TASKS, SPREAD):
                # Before: sent as Celery sends a countdown, with no delay in SQS.
                extra = {"delay_seconds": 0} if stock else {}
                slow.apply_async((key, 0), queue="audit", countdown=offset, **extra)
            sent = time.monotonic() - started
            held, waiting = 0, 0
            stop = threading.Event()

            def sample() -> None:
                nonlocal held, waiting
                names = [
                    "ApproximateNumberOfMessagesNotVisible",
                    "ApproximateNumberOfMessagesDelayed",
                ]
                while not stop.wait(0.5):
                    a = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
                    held = max(held, int(a[names[0]]))
                    waiting = max(waiting, int(a[names[1]]))

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            from tasks.app import app as kopter_app

            r = kopter_app.backend.client
            while r.llen(key) < TASKS and time.monotonic() - started < SPREAD + 120:
                time.sleep(0.5)
            elapsed = time.monotonic() - started
            stop.set()
            sampler.join()
            ran = r.llen(key)
        finally:
            devstack.stop_all([worker])
        calls = [
            q
            for q in proxy.requests
            if "ChangeMessageVisibility" in q.headers.get("X-Amz-Target", "")
        ]
    return {
        "sent": sent,
        "elapsed": elapsed,
        "ran": ran,
        "held": held,
        "waiting": waiting,
        "visibility_calls": len(calls),
    }


def main() -> int:
    cores = os.cpu_count()
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    print(
        f"kopter bench: delayed tasks, in workers or in SQS   (machine: {cores} cores, "
        f"{memory:.1f} GiB, load average {os.getloadavg()[0]:.1f} at the start)",
        flush=True,
    )
    print(
        f"   {TASKS} tasks spread over {SPREAD} s by the describer's hash, one worker "
        f"({PROCESSES} processes), visibility timeout {VISIBILITY} s (renewed every "
        f"{VISIBILITY // 3} s)",
        flush=True,
    )
    logs = Path(tempfile.mkdtemp(prefix="kopter-bench-delays-"))
    moto = devstack.start_moto(MOTO_PORT, logs)
    redis = devstack.start_redis(REDIS_PORT, logs / "redis", logs)
    ok = True
    try:
        settings = get_settings()
        bind(settings)
        bootstrap(settings)
        before = run("before", "benchmarks.stockworker", True, logs)
        after = run("after", "tests.support.harness", False, logs)
    finally:
        devstack.stop_all([moto, redis])
    interval = VISIBILITY / 3
    # Each held message is renewed once per keeper interval while it waits (on average half
    # the spread), ten to a call.
    expected = TASKS * (SPREAD / 2) / interval / 10
    print(f"\n   {'':<9}{'held by the worker':>20}{'waiting in SQS':>16}{'visibility calls':>18}")
    for name, r in (("before", before), ("after", after)):
        print(
            f"   {name:<9}{r['held']:>20,}{r['waiting']:>16,}{r['visibility_calls']:>18,}"
            f"   ({r['ran']} of {TASKS} ran in {r['elapsed']:.0f}s, sent in {r['sent']:.1f}s)"
        )
        ok = ok and r["ran"] == TASKS
    print(
        f"   (before, expected visibility calls: {TASKS} x {SPREAD / 2:.0f} s / {interval:.0f} s"
        f" / 10 = {expected:.0f})"
    )
    scale_interval = SCALE_VISIBILITY / 3
    scale_calls = SCALE_TASKS * (SCALE_SPREAD / 2) / scale_interval / 10
    print(
        f"\n   5,000 accounts x 4 regions ({SCALE_TASKS:,} tasks, spread {SCALE_SPREAD} s, "
        f"visibility timeout {SCALE_VISIBILITY} s), per hourly run:"
    )
    print(
        f"   before: up to {SCALE_TASKS:,} messages held by the workers (each is received at "
        f"once and held until due; here one worker held {before['held']} at once, "
        f"{before['held'] / TASKS:.0%}, as sending took {before['sent']:.0f} s of the {SPREAD} s "
        f"spread), ~{scale_calls:,.0f} ChangeMessageVisibilityBatch calls an hour"
    )
    print(
        f"   after:  at most what they run ({after['held']} here with {PROCESSES} processes; a "
        f"worker holds at most its pool size), the rest delayed in SQS; visibility calls only "
        f"for tasks running longer than {scale_interval:.0f} s"
    )
    # The point of the change, checked: the worker held no more than it ran.
    if after["held"] > PROCESSES * 2 or after["visibility_calls"] > before["visibility_calls"]:
        print("   FAIL: the worker held delayed tasks", flush=True)
        ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
