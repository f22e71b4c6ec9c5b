"""`make bench`: the hourly EC2 describer at scale, on this machine.

200 accounts x 4 regions x 25 instances in moto's server (its assume-role into another account id
gives each account its own EC2). One describer run through a real `celery worker -Q describer`
(2 processes) is timed twice: the first, when every instance is new, and an ordinary hour when
nothing changed; beside it, the bare DescribeInstances calls the run needs, made one after the
other from here. A proxy on 127.0.0.1 counts the worker's API calls.
"""

from __future__ import annotations

import os
import secrets
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kopter.devstack import (  # noqa: E402
    LOCAL_AWS_ENV,
    celery_argv,
    free_port,
    spawn,
    start_moto,
    start_redis,
    stop_all,
    wait_for_line,
)

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

from kopter import accounts, aws  # noqa: E402
from kopter.bootstrap import bootstrap  # noqa: E402
from kopter.crossaccount import CrossAccountSessions  # noqa: E402
from kopter.settings import get_settings  # noqa: E402
from kopter.tables import GlobalItem  # noqa: E402
from tests.proxy import RecordingProxy  # noqa: E402

ACCOUNTS, REGIONS, PER_REGION = 200, ("us-east-1", "us-west-2", "eu-west-1", "ap-southeast-2"), 25


def seed() -> list:
    settings = get_settings()
    sessions = CrossAccountSessions(settings)
    connected = []
    for n in range(ACCOUNTS):
        if n % 10 == 0:  # ten accounts a tenant
            tenant = accounts.add_tenant(f"bench-{n}")
        account_id = f"{300000000000 + n}"
        account = accounts.add_account(
            tenant,
            accounts.AccountRequest(account_id, f"arn:aws:iam::{account_id}:role/kopter", REGIONS),
        )
        for region in REGIONS:
            sessions.client(accounts.target(account), "ec2", region).run_instances(
                ImageId="ami-0123456789abcdef0",
                InstanceType="t3.micro",
                MinCount=PER_REGION,
                MaxCount=PER_REGION,
            )
        connected.append(account)
    return connected


def bare_describe(connected: list) -> float:
    sessions = CrossAccountSessions(get_settings())
    for account in connected:  # credentials first: the run below times the calls alone
        sessions.session(accounts.target(account))
    start = time.perf_counter()
    for account in connected:
        for region in REGIONS:
            sessions.client(accounts.target(account), "ec2", region).describe_instances()
    return time.perf_counter() - start


def run(connected: list, run_at: str) -> float:
    from tasks.describer import describe_all_accounts

    keys = [
        {"key": {"S": f"described#{a.tenant_id}#{a.account_id}#{r}"}}
        for a in connected
        for r in REGIONS
    ]
    start = time.perf_counter()
    describe_all_accounts.delay(run_at).get(timeout=120)
    while _done(keys, run_at) < len(keys):
        time.sleep(1)
    return time.perf_counter() - start


def _done(keys: list, run_at: str) -> int:
    dynamodb, table = aws.client("dynamodb"), GlobalItem.Meta.table_name
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


def main() -> int:
    cores = os.cpu_count()
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    instances = ACCOUNTS * len(REGIONS) * PER_REGION
    print(f"kopter bench: EC2 describer   (machine: {cores} cores, {memory:.1f} GiB)")
    print(
        f"   {ACCOUNTS} accounts x {len(REGIONS)} regions x {PER_REGION} instances = "
        f"{instances:,} instances in moto's server; a worker (-Q describer, 2 processes)"
    )
    logs = Path(tempfile.mkdtemp(prefix="kopter-bench-describer-"))
    moto = start_moto(MOTO_PORT, logs)
    redis = start_redis(REDIS_PORT, logs / "redis", logs)
    worker = None
    try:
        bootstrap(get_settings())
        started = time.perf_counter()
        connected = seed()
        print(f"   seeded in {time.perf_counter() - started:.0f}s")
        bare = bare_describe(connected)
        with RecordingProxy(MOTO_PORT) as proxy:
            env = {**os.environ, "KOPTER_AWS_ENDPOINT_URL": proxy.url}
            argv = celery_argv("worker", "-Q", "describer", "-c", "2", "-l", "INFO")
            worker = spawn("worker", argv, env, logs, cwd=ROOT)
            wait_for_line(worker, " ready.")
            hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
            first = run(connected, hour.isoformat())
            calls_first = _calls(proxy)
            proxy.requests.clear()
            quiet = run(connected, (hour + timedelta(hours=1)).isoformat())
            calls_quiet = _calls(proxy)
    finally:
        stop_all([c for c in (worker, redis, moto) if c is not None])
    pairs = ACCOUNTS * len(REGIONS)
    print(f"\n   {'bare DescribeInstances, in a row':<38} {bare:>7.1f}s  ({pairs} calls)")
    for name, seconds, calls in (
        ("first run (every instance new)", first, calls_first),
        ("an hour with no change", quiet, calls_quiet),
    ):
        customer = calls["AssumeRole"] + calls["DescribeInstances"]
        print(
            f"   {name:<38} {seconds:>7.1f}s  "
            f"{customer / instances:.3f} customer API calls per instance "
            f"({calls['AssumeRole']} AssumeRole, {calls['DescribeInstances']} DescribeInstances), "
            f"{calls['dynamodb'] / instances:.2f} DynamoDB calls per instance"
        )
    per_pair = quiet / pairs * 2  # seconds of one worker process per (account, region)
    print(
        f"\n   An hour with no change costs {per_pair:.3f}s of a worker process per (account, "
        f"region) here, against moto. 5,000 accounts x 4 regions = 20,000 tasks an hour: "
        f"{20_000 * per_pair / 3600:.1f} worker processes kept busy, so "
        f"{max(1, int(20_000 * per_pair / 3600 / 0.5) + 1)} processes at 50 % load. These are "
        "moto's times: measure the bare call against AWS before sizing production."
    )
    return 0


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


if __name__ == "__main__":
    sys.exit(main())
