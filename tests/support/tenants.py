"""The isolation test's world (tests/test_isolation.py): three generated tenants with data of
every kind, and the `kopter` commands and worker that act for them, each behind a proxy that
records what it sent to AWS."""

from __future__ import annotations

import json
import random
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

from kopter import accounts, aws, cache, notifications, queues
from kopter.api.notifications import notification_id
from kopter.cloudtrail import digest, ingest
from kopter.costs.aggregator import aggregate_hour, hour_start
from kopter.devstack import Child
from kopter.pricing.cache import PriceCache
from kopter.settings import get_settings
from kopter.tables import FrontendNotification
from tests.conftest import MOTO_PORT, Connected, Kopter, customer_client, wait_for
from tests.support.drain import DEPTHS
from tests.support.factories import log_file, log_records
from tests.support.isolation import Log, Owner
from tests.support.proxy import Fault, Recorded, RecordingProxy

DAY = datetime(2026, 3, 1, tzinfo=UTC)  # the day of every tenant's CloudTrail records
WORKER_QUEUES = "describer,aggregator,audit,backup,notifications"
ACCESS_DENIED = (
    b'<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>'
    b"<Code>AccessDenied</Code><Message>User is not authorized to perform: sts:AssumeRole"
    b"</Message></Error><RequestId>1</RequestId></ErrorResponse>"
)


@dataclass(frozen=True)
class Customer:
    """A generated tenant: its id is an identity id (the read API takes it as the caller)."""

    name: str
    tenant_id: str
    account_ids: tuple[str, ...]
    records: tuple[dict[str, Any], ...]  # its CloudTrail log, every account's

    @property
    def owner(self) -> Owner:
        return Owner(self.tenant_id, frozenset(self.account_ids))

    def values(self, field_of: Callable[[dict[str, Any]], str | None]) -> list[str]:
        """Distinct values a field takes in the tenant's log, sorted (for a seeded choice)."""
        return sorted({v for r in self.records if (v := field_of(r))})


def _call(account: str, name: str, source: str, when: datetime, **fields: Any) -> dict[str, Any]:
    return {
        "eventVersion": "1.11",
        "eventTime": f"{when:%Y-%m-%dT%H:%M:%SZ}",
        "eventID": str(uuid.uuid4()),
        "eventSource": source,
        "eventName": name,
        "awsRegion": "us-east-1",
        "recipientAccountId": account,
        "userIdentity": {"type": "IAMUser", "arn": f"arn:aws:iam::{account}:user/ops"},
        **fields,
    }


def account_log(rng: random.Random, account: str) -> list[dict[str, Any]]:
    """Real records of the samples, plus a launch (an Ec2Event) and a denied StopLogging (a
    finding of the rules at ingest, hence a notification)."""
    at = DAY + timedelta(seconds=rng.randrange(86_400))
    instance = f"i-{rng.getrandbits(68):017x}"
    return [
        *log_records(rng.randint(4, 10), account, DAY, seed=rng.getrandbits(32)),
        _call(
            account,
            "RunInstances",
            "ec2.amazonaws.com",
            at,
            requestParameters={"instanceType": "t3.micro"},
            responseElements={"instancesSet": {"items": [{"instanceId": instance}]}},
        ),
        _call(
            account,
            "StopLogging",
            "cloudtrail.amazonaws.com",
            at,
            errorCode="AccessDenied",
            errorMessage="not authorized",
        ),
    ]


def generate_customers(seed: int) -> list[Customer]:
    """Tenant A with two accounts (the second one's role denies kopter), then two others with
    one or two, all drawn from ``seed``."""
    rng = random.Random(seed)
    used: set[str] = set()
    customers = []
    for index, name in enumerate("abc"):
        count = 2 if index == 0 else rng.randint(1, 2)
        ids: list[str] = []
        while len(ids) < count:
            account = f"{rng.randrange(10**11, 10**12)}"
            if account not in used:
                used.add(account)
                ids.append(account)
        tenant_id = f"us-east-1:{uuid.UUID(int=rng.getrandbits(128))}"
        records = tuple(r for account in ids for r in account_log(rng, account))
        customers.append(Customer(f"iso-{name}-{seed:x}", tenant_id, tuple(ids), records))
    return customers


def role_arn(account: str) -> str:
    return f"arn:aws:iam::{account}:role/kopter"


def denying(role: str) -> Fault:
    """A fault that answers AssumeRole of ``role`` as AWS does when its trust policy refuses."""
    quoted = quote_plus(role).encode()

    def deny(request: Recorded) -> tuple[int, bytes] | None:
        if b"Action=AssumeRole" in request.body and quoted in request.body:
            return 403, ACCESS_DENIED
        return None

    return deny


@dataclass
class Run:
    """One `kopter` command, and everything it sent to AWS."""

    args: tuple[str, ...]
    result: subprocess.CompletedProcess[str]
    proxy: RecordingProxy

    def rows(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.result.stdout.splitlines()]


class World:
    """The generated tenants in the session's stack, and the worker the test's jobs run on."""

    def __init__(self, customers: list[Customer]) -> None:
        self.customers = customers
        self.a = customers[0]
        self.denied_account = self.a.account_ids[-1]
        self.deny = denying(role_arn(self.denied_account))
        self.worker_proxy = RecordingProxy(MOTO_PORT, self.deny)
        self.worker: Child | None = None
        self.registration: list[Run] = []  # the commands that registered A
        self.runs: list[Run] = []
        self._lock = threading.Lock()
        self._kopter = Kopter()

    @property
    def others(self) -> list[str]:
        return [c.tenant_id for c in self.customers[1:]]

    def kopter(
        self, *args: str, ok: bool | None = True, proxy: RecordingProxy | None = None
    ) -> Run:
        """A `kopter` command, through a proxy of its own (by default one denying A's role)."""
        with proxy or RecordingProxy(MOTO_PORT, self.deny) as proxy:
            result = self._kopter(*args, env={"KOPTER_AWS_ENDPOINT_URL": proxy.url}, ok=ok)
        run = Run(args, result, proxy)
        with self._lock:
            self.runs.append(run)
        return run

    def in_parallel(self, commands: Sequence[tuple[str, ...]]) -> list[Run]:
        with ThreadPoolExecutor(4) as pool:
            return list(pool.map(lambda args: self.kopter(*args), commands))

    def worker_requests(self, start: int, end: int | None = None) -> list[Recorded]:
        return self.worker_proxy.requests[start:end]

    def wait_quiet(self) -> int:
        """Wait until no message is left in the worker's queues (every task done, and whatever
        it set off); return how many requests the worker had sent by then."""
        sqs = aws.client("sqs", get_settings())
        urls = [sqs.get_queue_url(QueueName=name)["QueueUrl"] for name in _worker_queue_names()]
        quiet_in_a_row = [0]

        def quiet() -> bool:
            depths = [
                int(value)
                for url in urls
                for value in sqs.get_queue_attributes(QueueUrl=url, AttributeNames=DEPTHS)[
                    "Attributes"
                ].values()
            ]
            quiet_in_a_row[0] = 0 if any(depths) else quiet_in_a_row[0] + 1
            return quiet_in_a_row[0] >= 2

        wait_for(quiet, 90, "the worker's queues drained", interval=0.5)
        return len(self.worker_proxy.requests)


def purge_worker_queues() -> None:
    """Drop what earlier tests left on the worker's queues (a notification nobody delivered, an
    aggregator run a chord set off): other tenants' work, which the worker would run."""
    sqs = aws.client("sqs", get_settings())
    for name in _worker_queue_names():
        sqs.purge_queue(QueueUrl=sqs.get_queue_url(QueueName=name)["QueueUrl"])


def _worker_queue_names() -> list[str]:
    return [queues.sqs_name(get_settings(), q) for q in WORKER_QUEUES.split(",")]


def populate(world: World, trail_files: Path) -> None:
    """A registered through the command line (in the background) while the others are written
    in-process; then instances in every account, and what the day's jobs make of the data."""
    with ThreadPoolExecutor(1) as background:
        registered = background.submit(_register_a, world, trail_files)
        for other in world.customers[1:]:
            _seed_tenant(other)
            _launch_instances(other, tagged=False)
            _derive(other)
        registered.result()
    _launch_instances(world.a, tagged=True)
    _derive(world.a)


def _register_a(world: World, trail_files: Path) -> None:
    """Tenant A as the operator types it, through the command line: the tenant, its accounts,
    its CloudTrail log ingested. Observed: A's first writes."""
    a = world.a
    world.registration.append(world.kopter("tenants", "add", a.name, "--tenant-id", a.tenant_id))
    world.registration += world.in_parallel(
        [
            (
                "accounts",
                "add",
                "--tenant",
                a.tenant_id,
                "--account-id",
                account,
                "--role-arn",
                role_arn(account),
            )
            for account in a.account_ids
        ]
    )
    path = trail_files / f"{a.name}.json.gz"
    path.write_bytes(log_file(list(a.records)))
    world.registration.append(world.kopter("ingest", str(path), "--tenant", a.tenant_id))


def _seed_tenant(customer: Customer) -> None:
    """Another tenant, written in-process the way the commands and tasks write (as
    tests/support/readapi.py does): cheaper than a process per step, and not what is observed."""
    tenant = accounts.add_tenant(customer.name, customer.tenant_id)
    for account in customer.account_ids:
        request = accounts.AccountRequest(account, role_arn(account), ("us-east-1",))
        accounts.add_account(tenant, request)
    document = log_file(list(customer.records))
    source = f"file:///{customer.name}.json.gz"
    settings = get_settings()
    ingest.ingest_document(
        document,
        tenant.tenant_id,
        customer.account_ids,
        source,
        settings,
        lambda notice: notifications.deliver(notice, settings),  # as the worker's task raises it
    )


def _derive(customer: Customer) -> None:
    """What the day's jobs make of a tenant's data, in-process: the audit digest of DAY and its
    notifications, and the last hour's cost points."""
    settings = get_settings()
    for notice in digest.audit_day(customer.tenant_id, DAY.date(), settings).notices():
        notifications.deliver(notice, settings)
    prices = PriceCache(cache.client(settings), settings.prefix)
    last_hour = hour_start(datetime.now(UTC)) - timedelta(hours=1)
    aggregate_hour(customer.tenant_id, last_hour, prices.on_demand, settings)


def _launch_instances(customer: Customer, tagged: bool) -> None:
    """Instances in each of the customer's accounts (in moto), one tagged for backup if asked."""
    for account in customer.account_ids:
        external_id = accounts.get_account(customer.tenant_id, account).external_id
        ec2 = customer_client(Connected(customer.tenant_id, account, external_id), "ec2")
        tag_sets = [[{"Key": "role", "Value": "web"}]]
        if tagged:
            tag_sets.append([{"Key": "kopter:backup", "Value": "true"}])
        for tags in tag_sets:
            ec2.run_instances(
                ImageId="ami-0123456789abcdef0",
                InstanceType="t3.micro",
                MinCount=1,
                MaxCount=1,
                TagSpecifications=[{"ResourceType": "instance", "Tags": tags}],
            )


def registered_external_ids(world: World) -> dict[str, str]:
    """Every ExternalId of the generated tenants' accounts, read from the table: account -> id."""
    return {
        account.account_id: account.external_id
        for customer in world.customers
        for account in accounts.list_accounts(customer.tenant_id)
    }


def notification_ids(customer: Customer) -> list[str]:
    """The tenant's notifications as the API names them, read straight from the table."""
    found = FrontendNotification.query(customer.tenant_id)
    return [notification_id(n.notification_key) for n in found]


def leaked_ids(world: World, text: str) -> list[str]:
    """The other tenants' ids and account ids that ``text`` shows."""
    return [
        value
        for other in world.customers[1:]
        for value in (other.tenant_id, *other.account_ids)
        if value in text
    ]


def command_logs(runs: Iterable[Run]) -> list[Log]:
    logs = []
    for index, run in enumerate(runs):
        command = f"#{index} `kopter {' '.join(run.args)}`"
        shows = run.args[:2] == ("accounts", "add") or (
            run.args[:2] == ("accounts", "list") and "--json" in run.args
        )
        logs.append(Log(f"{command} stdout", run.result.stdout, shows))
        logs.append(Log(f"{command} stderr", run.result.stderr))
    return logs
