"""`make bench`: the cost aggregator over one tenant's fleet, on this machine.

1,000 instances (10 accounts x 100, four instance types, Linux and Windows) in moto's DynamoDB,
with 24 hours of Ec2Events: every instance stopped and started again twice in the day, a tenth
launched during it and a tenth resized. The prices come from the Redis price cache, as on a
worker. Timed: one run for the day's first hour, which reads every event since (24 hours of
them), in wall time and in CPU time of kopter's own process, beside the DynamoDB calls it made.
"""

from __future__ import annotations

import os
import random
import secrets
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kopter import accounts, cache, dynamo  # noqa: E402
from kopter.bootstrap import bootstrap  # noqa: E402
from kopter.costs.aggregator import aggregate_hour  # noqa: E402
from kopter.devstack import LOCAL_AWS_ENV, free_port, start_moto, start_redis, stop_all  # noqa: E402
from kopter.ec2.events import DESCRIBER, Change, new_event  # noqa: E402
from kopter.pricing.cache import PriceCache  # noqa: E402
from kopter.settings import get_settings  # noqa: E402
from kopter.tables import Ec2Event, Ec2Instance, bind  # noqa: E402

MOTO_PORT, REDIS_PORT = free_port(), free_port()
os.environ.update(
    {
        **LOCAL_AWS_ENV,
        "KOPTER_AWS_ENDPOINT_URL": f"http://127.0.0.1:{MOTO_PORT}",
        "KOPTER_REDIS_URL": f"redis://127.0.0.1:{REDIS_PORT}/0",
        "KOPTER_PREFIX": f"bencha{secrets.token_hex(3)}-",
    }
)

ACCOUNTS, PER_ACCOUNT, REGION = 10, 100, "us-east-1"
DAY = datetime(2026, 11, 20, tzinfo=UTC)
TYPES = {"t3.micro": "0.0104", "m5.large": "0.096", "c5.xlarge": "0.17", "r5.2xlarge": "0.504"}


def seed(tenant_id: str) -> int:
    settings = get_settings()
    rng = random.Random(7)
    rows, items = [], {}
    for n in range(ACCOUNTS):
        account_id = f"{400000000000 + n}"
        accounts.add_account(
            accounts.resolve_tenant(tenant_id),
            accounts.AccountRequest(
                account_id, f"arn:aws:iam::{account_id}:role/kopter", (REGION,)
            ),
        )
        for i in range(PER_ACCOUNT):
            instance_id = f"i-{n:04d}{i:013d}"
            itype = rng.choice(list(TYPES))
            launched = DAY + timedelta(minutes=rng.randrange(24 * 60)) if i % 10 == 0 else None
            changes = []
            if launched:
                changes.append(Change(instance_id, REGION, "launched", launched, None))
            for _ in range(2):
                stop = DAY + timedelta(minutes=rng.randrange(24 * 60 - 120))
                if launched and stop < launched:
                    continue
                changes.append(Change(instance_id, REGION, "stopped", stop))
                start = stop + timedelta(minutes=rng.randrange(5, 120))
                changes.append(Change(instance_id, REGION, "started", start))
            if i % 10 == 5:
                changes.append(
                    Change(
                        instance_id,
                        REGION,
                        "resized",
                        DAY + timedelta(hours=6),
                        {"from": "t3.micro"},
                    )
                )
            for change in changes:  # two changes of a kind in one minute are one event
                event = new_event(tenant_id, account_id, change, DESCRIBER)
                items[event.event_key] = event.serialize()
            rows.append(
                Ec2Instance(
                    f"{tenant_id}#{account_id}",
                    f"{REGION}#{instance_id}",
                    tenant_id=tenant_id,
                    account_id=account_id,
                    region=REGION,
                    instance_id=instance_id,
                    state="running",
                    instance_type=itype,
                    platform="Windows" if i % 4 == 0 else "Linux/UNIX",
                    tenancy="default",
                    launch_time=launched or DAY - timedelta(days=3),
                    first_seen_at=DAY - timedelta(days=3),
                    last_seen_at=DAY + timedelta(hours=24),
                ).serialize()
            )
    dynamo.batch_put(Ec2Instance.Meta.table_name, rows, settings)
    dynamo.batch_put(Ec2Event.Meta.table_name, items.values(), settings)
    return len(items)


def _count_calls() -> dict[str, int]:
    """DynamoDB calls this process makes from now on, by operation."""
    from botocore.client import BaseClient

    calls: dict[str, int] = {}
    original = BaseClient._make_api_call

    def counted(self: BaseClient, operation: str, params: dict) -> dict:
        calls[operation] = calls.get(operation, 0) + 1
        return original(self, operation, params)

    BaseClient._make_api_call = counted  # type: ignore[method-assign]
    return calls


def main() -> int:
    cores = os.cpu_count()
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    print(f"kopter bench: cost aggregator   (machine: {cores} cores, {memory:.1f} GiB)")
    logs = Path(tempfile.mkdtemp(prefix="kopter-bench-aggregator-"))
    moto = start_moto(MOTO_PORT, logs)
    redis = start_redis(REDIS_PORT, logs / "redis", logs)
    try:
        settings = get_settings()
        bind(settings)
        bootstrap(settings)
        tenant = accounts.add_tenant("bench")
        started = time.perf_counter()
        events = seed(tenant.tenant_id)
        print(
            f"   {ACCOUNTS * PER_ACCOUNT:,} instances in {ACCOUNTS} accounts, {events:,} events "
            f"over 24 hours, seeded in {time.perf_counter() - started:.0f}s"
        )
        prices = PriceCache(cache.client(settings), settings.prefix)
        prices.replace(
            REGION,
            [
                (f"{t}#{os_}#Shared#No License required#NA", usd)
                for t, usd in TYPES.items()
                for os_ in ("Linux", "Windows")
            ],
        )
        calls = _count_calls()
        started, cpu = time.perf_counter(), time.process_time()
        first = aggregate_hour(tenant.tenant_id, DAY, prices.on_demand, settings)
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    finally:
        stop_all([redis, moto])
    running = sum(p.running_instances for p in first.points)
    print(
        f"   one run, the day's first hour (it reads all 24 hours of events since): "
        f"{wall:.2f}s wall, {cpu:.2f}s CPU in kopter's process; {first.total:.2f} USD over "
        f"{running} running instances"
    )
    print(
        f"   DynamoDB: {sum(calls.values())} calls "
        f"({', '.join(f'{n} {op}' for op, n in sorted(calls.items()))}), "
        f"{ACCOUNTS} points written"
    )
    print(
        "   The wall time is moto's: its Query costs milliseconds per item returned (an "
        "in-memory scan in Python); against DynamoDB the same calls take tens of ms each, and "
        "the CPU figure is what kopter itself spends."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
