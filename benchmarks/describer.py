"""`make bench`: the hourly EC2 describer at scale, on this machine.

200 accounts x 4 regions x 25 instances in moto's server (its assume-role into another account id
gives each account its own EC2; `benchmarks.partitionmoto` makes its Query read one partition, as
DynamoDB's does); `KOPTER_BENCH_ACCOUNTS` sets fewer for a quick trial. One
describer run through a real `celery worker -Q describer` (2 processes) is timed twice: the
first, when every instance is new, and an ordinary hour when nothing changed; beside it, the bare
DescribeInstances calls the run needs, made one after the other from here. A proxy on 127.0.0.1
counts the worker's API calls. moto's and the worker's CPU time show where the time goes.
"""

from __future__ import annotations

import os
import re
import secrets
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kopter import accounts, aws  # noqa: E402
from kopter.bootstrap import bootstrap  # noqa: E402
from kopter.crossaccount import assume_role  # noqa: E402
from kopter.devstack import (  # noqa: E402
    LOCAL_AWS_ENV,
    Child,
    celery_argv,
    free_port,
    spawn,
    start_redis,
    stop_all,
    wait_for_line,
    wait_for_port,
)
from kopter.settings import get_settings  # noqa: E402
from kopter.tables import AwsAccount, GlobalItem, bind  # noqa: E402
from tests.support.proxy import RecordingProxy  # noqa: E402

MOTO_PORT, REDIS_PORT = free_port(), free_port()
os.environ.update(
    {
        **LOCAL_AWS_ENV,
        "KOPTER_AWS_ENDPOINT_URL": f"http://127.0.0.1:{MOTO_PORT}",
        "KOPTER_REDIS_URL": f"redis://127.0.0.1:{REDIS_PORT}/0",
        "KOPTER_PREFIX": f"benchd{secrets.token_hex(3)}-",
        "KOPTER_DESCRIBE_SPREAD_SECONDS": "0",
    }
)

ACCOUNTS = int(os.environ.get("KOPTER_BENCH_ACCOUNTS", "200"))
REGIONS, PER_REGION = ("us-east-1", "us-west-2", "eu-west-1", "ap-southeast-2"), 25
PROCESSES = 2  # the worker's pool
# moto's DescribeInstances costs the same every call: timing this many of them, spread over the
# accounts, gives the bare calls' total without spending minutes on the rest.
BARE_SAMPLE = 100
SCALE_ACCOUNTS = 5_000


_session, _session_lock = boto3.session.Session(), threading.Lock()


def customer_ec2(account: AwsAccount, regions: tuple[str, ...]) -> dict[str, Any]:
    """EC2 clients inside a customer account, for seeding and the bare calls. One boto3 session
    for all: each of kopter's per-account sessions loads EC2's model again (~0.25 s, ~29 MiB)."""
    credentials = assume_role(accounts.target(account), get_settings())
    with _session_lock:  # a boto3 Session may not create clients from two threads at once
        return {
            region: _session.client(
                "ec2",
                region_name=region,
                endpoint_url=os.environ["KOPTER_AWS_ENDPOINT_URL"],
                aws_access_key_id=credentials["access_key"],
                aws_secret_access_key=credentials["secret_key"],
                aws_session_token=credentials["token"],
            )
            for region in regions
        }


def seed() -> list[AwsAccount]:
    tenants = [accounts.add_tenant(f"bench-{n}") for n in range(0, ACCOUNTS, 10)]  # ten each

    def connect(n: int) -> AwsAccount:
        account_id = f"{300000000000 + n}"
        account = accounts.add_account(
            tenants[n // 10],
            accounts.AccountRequest(account_id, f"arn:aws:iam::{account_id}:role/kopter", REGIONS),
        )
        for ec2 in customer_ec2(account, REGIONS).values():
            ec2.run_instances(
                ImageId="ami-0123456789abcdef0",
                InstanceType="t3.micro",
                MinCount=PER_REGION,
                MaxCount=PER_REGION,
            )
        return account

    # Threads overlap this process's work with moto's; moto answers on one core either way.
    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(connect, range(ACCOUNTS)))


def bare_describe(connected: list[AwsAccount]) -> tuple[float, int]:
    """Seconds per DescribeInstances call made one after the other, and how many were timed."""
    if len(connected) * len(REGIONS) <= BARE_SAMPLE:
        sample = [(a, r) for a in connected for r in REGIONS]
    else:  # accounts evenly spread, regions in turn
        step = len(connected) / BARE_SAMPLE
        sample = [(connected[int(i * step)], REGIONS[i % len(REGIONS)]) for i in range(BARE_SAMPLE)]
    clients = [customer_ec2(a, (r,))[r] for a, r in sample]  # credentials first: calls timed
    start = time.perf_counter()
    for ec2 in clients:
        ec2.describe_instances()
    return (time.perf_counter() - start) / len(sample), len(sample)


@dataclass(frozen=True)
class Run:
    seconds: float
    calls: Counter[str]
    moto_cpu: float
    worker_cpu: float
    replaced: int  # pool processes


RUN_DEADLINE = 3600.0


def run(
    connected: list[AwsAccount], run_at: str, proxy: RecordingProxy, moto: Child, worker: Child
) -> Run:
    from tasks.describer import describe_all_accounts

    keys = [
        {"key": {"S": f"described#{a.tenant_id}#{a.account_id}#{r}"}}
        for a in connected
        for r in REGIONS
    ]
    proxy.requests.clear()
    moto_cpu, worker_cpu = cpu_seconds(moto.process.pid), tree_cpu_seconds(worker.process.pid)
    processes = _pool_processes(worker)
    start = time.perf_counter()
    describe_all_accounts.delay(run_at).get(timeout=RUN_DEADLINE)
    while _done(keys, run_at) < len(keys):
        if not worker.alive or time.perf_counter() - start > RUN_DEADLINE:
            raise SystemExit(f"the run did not finish:\n{worker.tail()}")
        time.sleep(1)
    return Run(
        time.perf_counter() - start,
        _calls(proxy),
        cpu_seconds(moto.process.pid) - moto_cpu,
        tree_cpu_seconds(worker.process.pid) - worker_cpu,
        _pool_processes(worker) - max(processes, PROCESSES),
    )


def _done(keys: list[dict[str, dict[str, str]]], run_at: str) -> int:
    dynamodb, table = aws.client("dynamodb", get_settings()), GlobalItem.Meta.table_name
    done = 0
    for i in range(0, len(keys), 100):
        pending = {table: {"Keys": keys[i : i + 100]}}
        while pending:
            response = dynamodb.batch_get_item(RequestItems=pending)
            done += sum(
                run_at in item["value"]["S"] for item in response["Responses"].get(table, [])
            )
            pending = response.get("UnprocessedKeys") or {}
    return done


def _calls(proxy: RecordingProxy) -> Counter[str]:
    calls: Counter[str] = Counter()
    for r in proxy.requests:
        target = r.headers.get("X-Amz-Target", "")
        if target.startswith("DynamoDB"):
            calls["dynamodb"] += 1
        elif b"Action=AssumeRole" in r.body:
            calls["AssumeRole"] += 1
        elif b"Action=DescribeInstances" in r.body:
            calls["DescribeInstances"] += 1
    return calls


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (all its threads) and of its children it has reaped."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """CPU of a worker and of its live pool processes."""
    total = cpu_seconds(pid)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if stat.read_text().rsplit(")", 1)[1].split()[1] == str(pid):
                total += cpu_seconds(int(stat.parent.name))
        except (OSError, IndexError):
            continue  # gone meanwhile
    return total


def main() -> int:
    cores = os.cpu_count()
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    instances = ACCOUNTS * len(REGIONS) * PER_REGION
    pairs = ACCOUNTS * len(REGIONS)
    load = os.getloadavg()[0]
    print(
        f"kopter bench: EC2 describer   (machine: {cores} cores, {memory:.1f} GiB, "
        f"load average {load:.1f} at the start)",
        flush=True,
    )
    print(
        f"   {ACCOUNTS} accounts x {len(REGIONS)} regions x {PER_REGION} instances = "
        f"{instances:,} instances in moto's server; a worker (-Q describer, {PROCESSES} "
        "processes)",
        flush=True,
    )
    logs = Path(tempfile.mkdtemp(prefix="kopter-bench-describer-"))
    started = time.perf_counter()
    # moto's own Query sorts the whole table: see benchmarks/partitionmoto.py.
    moto_argv = [sys.executable, "-m", "benchmarks.partitionmoto", "-H", "127.0.0.1", "-p"]
    moto = spawn("moto", [*moto_argv, str(MOTO_PORT)], os.environ, logs, cwd=ROOT)
    redis = start_redis(REDIS_PORT, logs / "redis", logs)
    worker = None
    try:
        wait_for_port(moto, MOTO_PORT)
        settings = get_settings()
        bind(settings)
        bootstrap(settings)
        start, moto_cpu = time.perf_counter(), cpu_seconds(moto.process.pid)
        connected = seed()
        seeded, seed_cpu = time.perf_counter() - start, cpu_seconds(moto.process.pid) - moto_cpu
        print(
            f"   seeded in {seeded:.0f}s ({pairs} RunInstances; moto's server busy "
            f"{seed_cpu:.0f}s of it)",
            flush=True,
        )
        bare, timed = bare_describe(connected)
        sampled = f", {timed} timed" if timed < pairs else ""
        print(
            f"\n   {'bare DescribeInstances, in a row':<32} {bare * pairs:>6.1f}s  "
            f"({pairs} calls, {bare * 1000:.0f} ms each{sampled})",
            flush=True,
        )
        with RecordingProxy(MOTO_PORT) as proxy:
            env = {**os.environ, "KOPTER_AWS_ENDPOINT_URL": proxy.url}
            argv = celery_argv("worker", "-Q", "describer", "-c", str(PROCESSES), "-l", "INFO")
            worker = spawn("worker", argv, env, logs, cwd=ROOT)
            wait_for_line(worker, " ready.")
            hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
            first = run(connected, hour.isoformat(), proxy, moto, worker)
            _print_run("first run (every instance new)", first, instances)
            quiet = run(connected, (hour + timedelta(hours=1)).isoformat(), proxy, moto, worker)
            _print_run("an hour with no change", quiet, instances)
            stop_all([worker])  # before the proxy: its calls go through it
            worker = None
    finally:
        stop_all([c for c in (worker, redis, moto) if c is not None])
    print(
        f"   {'whole benchmark':<32} {time.perf_counter() - started:>6.1f}s  "
        f"(seeding {seeded:.0f}s of it; load average {os.getloadavg()[0]:.1f} at the end)"
    )
    _scale(first, quiet, bare, pairs)
    return 0


def _print_run(name: str, r: Run, instances: int) -> None:
    customer = r.calls["AssumeRole"] + r.calls["DescribeInstances"]
    print(
        f"   {name:<32} {r.seconds:>6.1f}s  "
        f"{customer / instances:.3f} customer API calls per instance "
        f"({r.calls['AssumeRole']} AssumeRole, {r.calls['DescribeInstances']} "
        f"DescribeInstances), {r.calls['dynamodb'] / instances:.3f} DynamoDB calls per "
        f"instance\n   {'':<40}moto's server busy {r.moto_cpu:.0f}s, the worker "
        f"{r.worker_cpu:.0f}s CPU, {r.replaced} pool processes replaced",
        flush=True,
    )


def _pool_processes(worker: Child) -> int:
    """Pool processes the worker has started so far (it replaces one that passed
    KOPTER_WORKER_MAX_MEMORY_MB or KOPTER_WORKER_MAX_TASKS_PER_CHILD)."""
    return len(set(re.findall(r"ForkPoolWorker-\d+", worker.tail(10**7))))


def _scale(first: Run, quiet: Run, bare: float, pairs: int) -> None:
    """What the measured figures mean for 5,000 accounts with N worker processes."""
    tasks = SCALE_ACCOUNTS * len(REGIONS)
    # Seconds of a worker process per (account, region): its share of the run, waiting included.
    per_first, per_quiet = (r.seconds * PROCESSES / pairs for r in (first, quiet))
    cpu_first, cpu_quiet = (r.worker_cpu / pairs for r in (first, quiet))
    print(
        f"\n   {SCALE_ACCOUNTS:,} accounts x {len(REGIONS)} regions = {tasks:,} tasks. Here a "
        f"task took {per_quiet:.2f}s of a worker process in an hour with no change "
        f"({cpu_quiet:.3f}s of it CPU)\n   and {per_first:.2f}s in the first run "
        f"({cpu_first:.3f}s CPU). With N processes, by those figures:"
    )
    print(f"   {'N processes':>14} {'hour, no change':>16} {'first run':>10}")
    for n in (2, 8, 32, 128):
        print(
            f"   {n:>14} {tasks * per_quiet / n / 60:>12.1f} min {tasks * per_first / n / 60:>6.1f}"
            " min"
        )
    hourly = tasks * per_quiet / 3600
    print(
        f"   An hour with no change keeps {hourly:.1f} processes busy all hour and uses "
        f"{tasks * cpu_quiet / 3600:.2f} cores; N = {max(1, round(2 * hourly))} leaves half of "
        "that time idle.\n"
        "   The rest of a task's time is waiting for the backend, and the table assumes it "
        "answers N processes as fast as it\n   answered 2 here: AWS does across accounts, "
        "moto (one core) does not. A bare DescribeInstances took "
        f"{bare * 1000:.0f} ms here:\n   time it against AWS before sizing production."
    )


if __name__ == "__main__":
    sys.exit(main())
