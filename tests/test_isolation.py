"""No customer ever sees another's data, proven by watching the wire rather than reading the code.

Three generated tenants, A and two others, each with accounts and data of every kind. Every
kopter process here (each `kopter` command, one `celery worker`, one `kopter api`) reaches AWS
through a RecordingProxy, and every DynamoDB request it sent is parsed: each partition-key value
it names (an item's key, a key condition, the hash key of an item's table or of its indexes, a
start key, a key attribute an update sets) must be tenant A's (its id, ``<A>#…``, a Global item
of A's such as the claim on one of its account ids) or belong to no tenant (prices); and no
request may name another tenant anywhere. What runs as A: A's registration and the listings of
the command line, A's jobs on the worker (describer, daily audit, backup) with all they set off
(the describer's aggregator, notifications), and the read API with A's identity. Negative
controls: the same checker flags another tenant's query on the command line and on the API,
the worker's traffic for A when it is judged as another tenant's, and made-up requests.

Then: two tenants registering one account id at the same moment (each transaction held at its
proxy until both are sent, so both are in flight at once) make one success and one refusal of
one line. And no log of these processes holds an ExternalId, a credential AssumeRole handed out
(read from the proxies' recorded responses) or one of the API's secrets; the scanner finds one
planted.

The generated tenants and queries come from SEED, which every failure names.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import random
import re
import secrets
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote_plus

import httpx
import pytest

from kopter import accounts, aws, cache, notifications, queues
from kopter.accounts import owner_key
from kopter.api.identity import IDENTITY_HEADER, SECRET_HEADER
from kopter.api.notifications import notification_id
from kopter.cloudtrail import digest, ingest
from kopter.costs.aggregator import aggregate_hour, hour_start
from kopter.devstack import Child, free_port, spawn, wait_for_port
from kopter.pricing.cache import PriceCache
from kopter.settings import get_settings
from kopter.tables import ALL_MODELS, FrontendNotification
from tests.conftest import (
    MOTO_PORT,
    OUTPUT,
    TEST_ENV,
    Connected,
    Kopter,
    Workers,
    customer_client,
    wait_for,
)
from tests.factories import log_file, log_records
from tests.proxy import Fault, Recorded, RecordingProxy
from tests.samples import ROOT

SEED = secrets.randbits(32)  # of the generated tenants and queries: every failure names it
DAY = datetime(2026, 3, 1, tzinfo=UTC)  # the day of every tenant's CloudTrail records
PREFIX = TEST_ENV["KOPTER_PREFIX"]
GATEWAY_SECRET = secrets.token_urlsafe(32)
CURSOR_KEY = secrets.token_urlsafe(32)
WORKER_QUEUES = "describer,aggregator,audit,backup,notifications"
ACCESS_DENIED = (
    b'<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>'
    b"<Code>AccessDenied</Code><Message>User is not authorized to perform: sts:AssumeRole"
    b"</Message></Error><RequestId>1</RequestId></ErrorResponse>"
)

# --- what a DynamoDB request touches ----------------------------------------------------------

DYNAMODB_TARGET = "DynamoDB_20120810."
# Operations that name no item: a table's description.
METADATA_OPERATIONS = frozenset({"DescribeTable", "DescribeTimeToLive", "ListTables"})
SCANNED = "(every partition)"  # the attribute of a Scan's use: it reads every tenant's items
NOT_UNDERSTOOD = "(not understood)"  # what the parser cannot read is never taken as A's
SHARED_TABLES = frozenset({"Ec2Prices"})  # keyed by region: the price list, no tenant's data
SHARED_GLOBAL_KINDS = frozenset({"pricing"})  # the price list's versions and ETags


def _partition_keys() -> dict[str, frozenset[str]]:
    """Per table (kopter's name, without a prefix): its hash key and its indexes' hash keys,
    the attributes whose value says whose partition an item lives in."""
    found = {}
    for model in ALL_MODELS:
        schema = model._get_schema()
        schemas: list[Any] = [schema, *schema["global_secondary_indexes"]]
        found[model.Meta.table_name.removeprefix(PREFIX)] = frozenset(
            key["AttributeName"]
            for s in schemas
            for key in s["key_schema"]
            if key["KeyType"] == "HASH"
        )
    return found


PARTITION_KEYS = _partition_keys()


@dataclass(frozen=True)
class KeyUse:
    """One partition one DynamoDB request reads or writes, named by a hash-key value."""

    operation: str
    table: str  # kopter's name, without the prefix
    attribute: str  # SCANNED for a Scan, NOT_UNDERSTOOD for what the parser cannot read
    value: str

    def __str__(self) -> str:
        return f"{self.operation} {self.table}.{self.attribute} = {self.value!r}"


def operation(request: Recorded) -> str:
    headers = {name.lower(): value for name, value in request.headers.items()}
    return headers.get("x-amz-target", "")


def dynamodb_requests(requests: Iterable[Recorded]) -> list[Recorded]:
    return [r for r in requests if operation(r).startswith(DYNAMODB_TARGET)]


def key_uses(request: Recorded, prefix: str) -> list[KeyUse]:
    """Every partition-key value a DynamoDB request names, wherever it names one."""
    op = operation(request).removeprefix(DYNAMODB_TARGET)
    body = json.loads(request.body)
    if op in METADATA_OPERATIONS:
        return []
    if op in ("GetItem", "DeleteItem", "UpdateItem", "PutItem", "Query", "Scan"):
        return _uses_of(op, body["TableName"], body, prefix)
    if op == "BatchGetItem":
        return [
            use
            for table, spec in body["RequestItems"].items()
            for key in spec["Keys"]
            for use in _uses_of(op, table, {"Key": key}, prefix)
        ]
    if op == "BatchWriteItem":
        return [
            use
            for table, writes in body["RequestItems"].items()
            for write in writes
            for spec in write.values()  # {"PutRequest": {"Item"}} or {"DeleteRequest": {"Key"}}
            for use in _uses_of(op, table, spec, prefix)
        ]
    if op in ("TransactWriteItems", "TransactGetItems"):
        return [
            use
            for entry in body["TransactItems"]
            for spec in entry.values()  # Put, Update, Delete, ConditionCheck, Get
            for use in _uses_of(op, spec["TableName"], spec, prefix)
        ]
    return [KeyUse(op, body.get("TableName", "?"), NOT_UNDERSTOOD, "an unknown operation")]


# DynamoDB's legacy parameters, which kopter (PynamoDB) does not send: not parsed, so never A's.
LEGACY_PARAMETERS = ("KeyConditions", "QueryFilter", "ScanFilter", "Expected", "AttributeUpdates")


def _uses_of(op: str, table_name: str, spec: dict[str, Any], prefix: str) -> list[KeyUse]:
    """The partition keys named by one table's part of a request: ``Key``, ``Item``,
    ``ExclusiveStartKey``, and the expressions (key condition, update, condition, filter).
    A part that names no partition at all (but a Scan's) is not understood."""
    table = table_name.removeprefix(prefix)
    partition = PARTITION_KEYS.get(table) if table_name.startswith(prefix) else None
    if partition is None:
        return [KeyUse(op, table_name, NOT_UNDERSTOOD, "a table of no known kopter world")]
    uses = [KeyUse(op, table, SCANNED, "*")] if op == "Scan" else []
    uses += [KeyUse(op, table, NOT_UNDERSTOOD, p) for p in LEGACY_PARAMETERS if p in spec]
    for part in ("Key", "Item", "ExclusiveStartKey"):
        for attribute, value in (spec.get(part) or {}).items():
            if attribute in partition:
                uses.append(KeyUse(op, table, attribute, _plain(value)))
    names = spec.get("ExpressionAttributeNames") or {}
    values = spec.get("ExpressionAttributeValues") or {}
    for part in (
        "KeyConditionExpression",
        "UpdateExpression",
        "ConditionExpression",
        "FilterExpression",
    ):
        uses += _expression_uses(op, table, partition, spec.get(part) or "", names, values)
    return uses or [KeyUse(op, table, NOT_UNDERSTOOD, "no partition named")]


# `name = :value` either way round (a name is `#placeholder` or plain); `attribute_exists(name)`
# and `attribute_not_exists(name)` name no value.
_EQUALS = re.compile(r"([#\w]+)\s*=\s*(:\w+)|(:\w+)\s*=\s*([#\w]+)")
_EXISTS = re.compile(r"attribute_(?:not_)?exists\s*\(\s*[#\w]+\s*\)")
_NAME = re.compile(r"[#\w]+")


def _expression_uses(
    op: str,
    table: str,
    partition: frozenset[str],
    expression: str,
    names: dict[str, str],
    values: dict[str, Any],
) -> list[KeyUse]:
    uses = []
    for match in _EQUALS.finditer(expression):
        name, value = (match.group(1), match.group(2)) if match.group(1) else match.group(4, 3)
        attribute = names.get(name, name)
        if attribute in partition:
            uses.append(KeyUse(op, table, attribute, _plain(values[value])))
    rest = _EXISTS.sub("", _EQUALS.sub("", expression))
    for name in _NAME.findall(rest):
        attribute = names.get(name, name)
        if attribute in partition:  # compared some other way: never taken as A's
            uses.append(KeyUse(op, table, attribute, NOT_UNDERSTOOD))
    return uses


def _plain(value: dict[str, Any]) -> str:
    return value["S"] if set(value) == {"S"} else json.dumps(value, sort_keys=True)


@dataclass(frozen=True)
class Owner:
    """Whose keys a flow may touch: a tenant's partitions, and its Global items (a Global key of
    a kind not named here is nobody's to touch)."""

    tenant_id: str
    account_ids: frozenset[str]

    def owns(self, use: KeyUse) -> bool:
        if use.table in SHARED_TABLES:
            return True
        if use.attribute in (SCANNED, NOT_UNDERSTOOD):
            return False
        if use.table == "Global":
            kind, _, rest = use.value.partition("#")
            if kind == "account-owner":  # the claim on an account id
                return rest in self.account_ids
            if kind == "described":  # described#<tenant>#<account>#<region>
                return rest.startswith(f"{self.tenant_id}#")
            return kind in SHARED_GLOBAL_KINDS
        if use.table == "Tenants":
            return use.value == self.tenant_id
        # Tenant ids never hold "#": "<A>#…" is A's partition, whoever's account follows.
        return use.value == self.tenant_id or use.value.startswith(f"{self.tenant_id}#")


@dataclass
class Verdict:
    """What a set of requests touched beyond one tenant's own."""

    requests: int  # DynamoDB requests looked at
    foreign: list[str] = field(default_factory=list)
    tables_written: set[str] = field(default_factory=set)


WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"})


def check(
    requests: Iterable[Recorded],
    owner: Owner,
    others: Iterable[str],
    accepted_scans: frozenset[str] = frozenset(),
) -> Verdict:
    """Every partition the DynamoDB requests touch must be ``owner``'s, and no request may name
    another tenant (``others``: their ids) anywhere, in a filter or a value written. A Scan is
    foreign unless its table is in ``accepted_scans`` (the caller says why)."""
    seen = dynamodb_requests(requests)
    verdict = Verdict(len(seen))
    other_ids = [o for o in others if o != owner.tenant_id]
    for request in seen:
        for use in key_uses(request, PREFIX):
            if use.operation in WRITES and use.attribute != NOT_UNDERSTOOD:
                verdict.tables_written.add(use.table)
            if use.attribute == SCANNED and use.table in accepted_scans:
                continue
            if not owner.owns(use):
                verdict.foreign.append(str(use))
        text = request.body.decode()
        verdict.foreign += [
            f"{operation(request)} names tenant {other}" for other in other_ids if other in text
        ]
    return verdict


def assumed_roles(requests: Iterable[Recorded]) -> set[tuple[str, str]]:
    """(role ARN, ExternalId) of every AssumeRole call among ``requests``."""
    found = set()
    for request in requests:
        form = parse_qs(request.body.decode(errors="replace"))
        if form.get("Action") == ["AssumeRole"]:
            found.add((form["RoleArn"][0], form.get("ExternalId", [""])[0]))
    return found


# --- the generated world ----------------------------------------------------------------------


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
    high finding of the daily audit, hence a notification)."""
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


def generate_customers(rng: random.Random) -> list[Customer]:
    """Tenant A with two accounts (the second one's role denies kopter), then two others with
    one or two."""
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
        customers.append(Customer(f"iso-{name}-{SEED:x}", tenant_id, tuple(ids), records))
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
    """The generated tenants in the session's stack, and the worker this module's jobs run on."""

    def __init__(self, customers: list[Customer]) -> None:
        self.customers = customers
        self.a = customers[0]
        self.denied_account = self.a.account_ids[-1]
        self.deny = denying(role_arn(self.denied_account))
        self.worker_proxy = RecordingProxy(MOTO_PORT, self.deny)
        self.worker: Child | None = None
        self.registration: list[Run] = []  # the commands that registered A
        # A loaded machine, and every call through a proxy: the suite's 4 s is too short.
        self.env = {"KOPTER_TASK_TIME_LIMIT": "60"}
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
            env = {**self.env, "KOPTER_AWS_ENDPOINT_URL": proxy.url}
            result = self._kopter(*args, env=env, ok=ok)
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


DEPTHS = [
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
]


def _worker_queue_names() -> list[str]:
    return [queues.sqs_name(get_settings(), q) for q in WORKER_QUEUES.split(",")]


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


def _seed(customer: Customer) -> None:
    """Another tenant, written in-process the way the commands and tasks write (as test_api's
    fixtures do): cheaper than a process per step, and not what is observed."""
    tenant = accounts.add_tenant(customer.name, customer.tenant_id)
    for account in customer.account_ids:
        request = accounts.AccountRequest(account, role_arn(account), ("us-east-1",))
        accounts.add_account(tenant, request)
    document = log_file(list(customer.records))
    source = f"file:///{customer.name}.json.gz"
    ingest.ingest_document(document, tenant.tenant_id, customer.account_ids, source, get_settings())


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


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The tenants and their data of every kind, instances in their accounts, and a worker on
    every queue A's jobs use."""
    # Messages earlier tests left (a notification nobody delivered, an aggregator run a chord
    # set off) would be other tenants' work on this module's worker: they are dropped first.
    sqs = aws.client("sqs", get_settings())
    for name in _worker_queue_names():
        sqs.purge_queue(QueueUrl=sqs.get_queue_url(QueueName=name)["QueueUrl"])
    workers = Workers()
    world = World(generate_customers(random.Random(SEED)))
    with world.worker_proxy as proxy:
        try:
            world.worker = workers.start(
                "isolation",
                WORKER_QUEUES,
                env={**world.env, "KOPTER_AWS_ENDPOINT_URL": proxy.url},
            )
            trail_files = tmp_path_factory.mktemp("isolation-trail")
            with ThreadPoolExecutor(1) as background:
                registered = background.submit(_register_a, world, trail_files)
                for other in world.customers[1:]:
                    _seed(other)
                    _launch_instances(other, tagged=False)
                    _derive(other)
                registered.result()
            _launch_instances(world.a, tagged=True)
            _derive(world.a)
            workers.wait_ready(world.worker)
            yield world
        finally:
            workers.stop_all()


def registered_external_ids(world: World) -> dict[str, str]:
    """Every ExternalId of the generated tenants' accounts, read from the table: account -> id."""
    return {
        account.account_id: account.external_id
        for customer in world.customers
        for account in accounts.list_accounts(customer.tenant_id)
    }


def _report(what: str, foreign: list[str]) -> str:
    shown = "\n  ".join(foreign[:20])
    return f"seed {SEED}: {what} touched what is not tenant A's ({len(foreign)}):\n  {shown}"


def _leaked_ids(world: World, text: str) -> list[str]:
    """The other tenants' ids and account ids that ``text`` shows."""
    return [
        value
        for other in world.customers[1:]
        for value in (other.tenant_id, *other.account_ids)
        if value in text
    ]


# --- (b) A's jobs on a real worker -------------------------------------------------------------


@dataclass
class Jobs:
    runs: list[Run]
    requests: list[Recorded]  # the worker's, from the first job sent to the last task done


@pytest.fixture(scope="module")
def a_jobs(world: World) -> Jobs:
    """A's jobs, sent at once as the operator would: a describer run (its tasks, then the
    aggregator its chord sets off), the daily audit of DAY, a backup run; and the notifications
    they raise."""
    a = world.a
    start = world.wait_quiet()
    runs = world.in_parallel(
        [
            ("run", "describer", "--tenant", a.tenant_id, "--wait", "--timeout", "90"),
            ("run", "audit", "--tenant", a.tenant_id, "--date", f"{DAY:%Y-%m-%d}", "--wait"),
            ("run", "backup", "--tenant", a.tenant_id, "--wait", "--timeout", "90"),
        ]
    )
    return Jobs(runs, world.worker_requests(start, world.wait_quiet()))


def test_tenant_a_jobs_on_a_worker_touch_only_its_own_keys(world: World, a_jobs: Jobs) -> None:
    a = world.a
    verdict = check(a_jobs.requests, a.owner, world.others)
    assert verdict.requests and not verdict.foreign, _report("the worker", verdict.foreign)
    # The jobs did their work, all of it inside A's partitions: they wrote to every table a job
    # writes to (a notice raised again is a put refused, still a write asked for).
    assert verdict.tables_written >= {
        "Ec2Instances",  # the describer
        "Ec2Events",
        "PriceGraphData",  # the aggregator the describer's chord set off
        "AuditDigests",  # the daily audit
        "Ec2Snapshots",  # the backup
        "AwsAccounts",  # health, from every job that reached the account
        "FrontendNotifications",  # the audit's findings, the denied role
    }, f"seed {SEED}: {verdict.tables_written}"
    for run in a_jobs.runs:
        sent = check(run.proxy.requests, a.owner, world.others)
        assert sent.requests and not sent.foreign, _report(" ".join(run.args), sent.foreign)
        assert not _leaked_ids(world, run.result.stdout + run.result.stderr), run.result.stdout

    # Only A's roles were assumed, each with its own ExternalId.
    everything = [*a_jobs.requests, *(r for run in a_jobs.runs for r in run.proxy.requests)]
    external_ids = registered_external_ids(world)
    mine = {(role_arn(account), external_ids[account]) for account in a.account_ids}
    assumed = assumed_roles(everything)
    assert assumed and assumed <= mine, f"seed {SEED}: {assumed - mine}"

    # Negative control: the same traffic checked as another tenant's is flagged, its reads and
    # its writes (test_the_checker_flags_another_tenants_partitions runs B's own query).
    other = world.customers[1]
    everyone = [c.tenant_id for c in world.customers]
    flagged = check(a_jobs.requests, other.owner, everyone).foreign
    assert f"Query AwsAccounts.tenant_id = {a.tenant_id!r}" in flagged
    assert f"PutItem AuditDigests.tenant_id = {a.tenant_id!r}" in flagged


# --- (a) A's queries on the command line ---------------------------------------------------------

# Scans. `kopter tenants add` is the operator registering A: it scans Tenants to refuse a name
# already taken, comparing the names in the process and showing none. That read of every
# tenant's row is accepted there, and only there; what follows it must be A's alone. No other
# flow of A's may scan: the fan-outs scan AwsAccounts (`all_accounts()`) or Tenants only when no
# tenant is given (beat's runs for everyone); with `--tenant` they query A's partition. (The
# describer's chord used to set off the aggregator for every tenant, a Tenants scan and every
# tenant's costs recomputed, from A's run: tasks/describer.py now passes the run's tenant on.)
SCAN_ACCEPTED_BY: dict[tuple[str, ...], frozenset[str]] = {
    ("tenants", "add"): frozenset({"Tenants"})
}


def _a_queries(world: World, rng: random.Random) -> list[tuple[str, ...]]:
    """Each listing of the command line as A: the audit log whole and with seeded filters, which
    may name another tenant's account (then it must read A's partition, and find nothing)."""
    a, other = world.a, world.customers[1]
    as_a = ("--tenant", a.tenant_id)
    names = a.values(lambda r: r["eventName"])
    principals = a.values(lambda r: (r.get("userIdentity") or {}).get("arn"))
    hour = rng.randrange(20)
    filters = [
        (),
        rng.choice(
            [
                ("--account", rng.choice(a.account_ids), "--errors"),
                ("--account", rng.choice(other.account_ids)),
                ("--event-name", rng.choice(names)),
                ("--user", rng.choice(principals)),
                ("--since", f"{DAY:%Y-%m-%d}T{hour:02}:00Z", "--until", f"{DAY:%Y-%m-%d}T23:59Z"),
            ]
        ),
    ]
    return [
        *(("audit", *as_a, *f, "--json") for f in filters),
        ("events", *as_a, *rng.choice([(), ("--account", rng.choice(a.account_ids))]), "--json"),
        ("accounts", "list", *as_a),
        ("graph", *as_a, "--by", rng.choice(["account", "region", "instance-type"]), "--json"),
        ("digest", *as_a, "--date", f"{DAY:%Y-%m-%d}", "--json"),
        ("snapshots", *as_a, "--json"),
        ("notifications", *as_a, "--json"),
        ("accounts", "check", *as_a, "--account-id", a.account_ids[0]),
    ]


@pytest.fixture(scope="module")
def a_commands(world: World) -> list[Run]:
    """A's queries on the command line, then a check of A's account whose role is denied."""
    runs = world.in_parallel(_a_queries(world, random.Random(SEED + 1)))
    denied = ("accounts", "check", "--tenant", world.a.tenant_id)
    return [*runs, world.kopter(*denied, "--account-id", world.denied_account, ok=False)]


def test_tenant_a_commands_touch_only_its_own_keys(world: World, a_commands: list[Run]) -> None:
    a = world.a
    # A's registration (tenant, accounts, its log ingested) is A's too: the writes as well.
    for run in [*world.registration, *a_commands]:
        command = " ".join(run.args)
        accepted = SCAN_ACCEPTED_BY.get(run.args[:2], frozenset())
        verdict = check(run.proxy.requests, a.owner, world.others, accepted)
        assert verdict.requests and not verdict.foreign, _report(command, verdict.foreign)
        output = run.result.stdout + run.result.stderr
        assert not _leaked_ids(world, output), f"seed {SEED}: {command} showed {output}"
        if "--json" in run.args:
            shown = {row["account_id"] for row in run.rows() if "account_id" in row}
            assert shown <= set(a.account_ids), f"seed {SEED}: {command}: {shown}"
    by_command = {run.args: run for run in a_commands}
    assert by_command[("audit", "--tenant", a.tenant_id, "--json")].rows(), "A's log is read"
    assert by_command[("notifications", "--tenant", a.tenant_id, "--json")].rows()
    # `accounts check` assumed A's roles only, each with its own ExternalId.
    external_ids = registered_external_ids(world)
    mine = {(role_arn(account), external_ids[account]) for account in a.account_ids}
    assumed = assumed_roles(r for run in a_commands for r in run.proxy.requests)
    assert assumed == mine, f"seed {SEED}: {assumed ^ mine}"


def test_the_checker_flags_another_tenants_partitions(world: World) -> None:
    """Negative controls: the checker is not blind. A real `kopter audit --tenant B`, through
    the same kind of proxy, is flagged when checked as A's (and passes as B's); so are, made up,
    a Scan, an item of A whose index key is B's partition, B's account claim, a key condition
    without placeholders, DynamoDB's legacy parameters, and an operation the parser does not
    know (each without the other tenants' ids to look for: the parser alone must catch it)."""
    a, b = world.a, world.customers[1]
    everyone = [c.tenant_id for c in world.customers]
    run = world.kopter("audit", "--tenant", b.tenant_id, "--json")
    assert run.rows()
    flagged = check(run.proxy.requests, a.owner, everyone).foreign
    assert f"Query AuditLogEvents.tenant_id = {b.tenant_id!r}" in flagged
    assert any(line.endswith(f"names tenant {b.tenant_id}") for line in flagged)
    assert not check(run.proxy.requests, b.owner, everyone).foreign

    def request(op: str, **body: Any) -> Recorded:
        headers = {"X-Amz-Target": f"{DYNAMODB_TARGET}{op}"}
        return Recorded("POST", "/", headers, json.dumps(body).encode())

    b_account = f"{b.tenant_id}#{b.account_ids[0]}"
    item = {
        "tenant_id": {"S": a.tenant_id},
        "event_key": {"S": "2026-03-01T00:00Z#x"},
        "tenant_account": {"S": b_account},
    }
    claim = owner_key(b.account_ids[0])
    made_up = {
        "Scan AwsAccounts.(every partition) = '*'": request(
            "Scan", TableName=f"{PREFIX}AwsAccounts"
        ),
        f"PutItem Ec2Events.tenant_account = {b_account!r}": request(
            "PutItem", TableName=f"{PREFIX}Ec2Events", Item=item
        ),
        f"BatchGetItem Global.key = {claim!r}": request(
            "BatchGetItem", RequestItems={f"{PREFIX}Global": {"Keys": [{"key": {"S": claim}}]}}
        ),
        f"Query Ec2Instances.tenant_account = {b_account!r}": request(
            "Query",
            TableName=f"{PREFIX}Ec2Instances",
            KeyConditionExpression="tenant_account = :p",
            ExpressionAttributeValues={":p": {"S": b_account}},
        ),
        "Query AuditLogEvents.(not understood) = 'KeyConditions'": request(
            "Query",
            TableName=f"{PREFIX}AuditLogEvents",
            KeyConditions={"tenant_id": {"AttributeValueList": [{"S": b.tenant_id}]}},
        ),
        "ExecuteStatement ?.(not understood) = 'an unknown operation'": request(
            "ExecuteStatement", Statement=f'SELECT * FROM "{PREFIX}AuditLogEvents"'
        ),
    }
    for expected, made in made_up.items():
        assert check([made], a.owner, []).foreign == [expected]


# --- (c) the read API with A's identity ----------------------------------------------------------


@dataclass
class Api:
    child: Child
    client: httpx.Client
    proxy: RecordingProxy

    def headers(self, customer: Customer) -> dict[str, str]:
        return {IDENTITY_HEADER: customer.tenant_id, SECRET_HEADER: GATEWAY_SECRET}

    def pages(self, path: str, customer: Customer, **params: str) -> list[dict[str, Any]]:
        """Every page of a listing, following ``next`` (so the API reads past a start key)."""
        found: list[dict[str, Any]] = []
        cursor = None
        for _ in range(50):
            response = self.client.get(
                path, params={**params, "cursor": cursor}, headers=self.headers(customer)
            )
            assert response.status_code == 200, response.text
            found += response.json()["items"]
            cursor = response.json().get("next")
            if cursor is None:
                return found
        raise AssertionError(f"{path} {params}: more than 50 pages")


@pytest.fixture(scope="module")
def api(world: World) -> Iterator[Api]:
    """A real `kopter api` behind API Gateway's identity header and secret."""
    port = free_port()
    with RecordingProxy(MOTO_PORT) as proxy:
        env = {
            **os.environ,
            **world.env,
            "KOPTER_AWS_ENDPOINT_URL": proxy.url,
            "KOPTER_API_AUTH": "gateway",
            "KOPTER_API_GATEWAY_SECRET": GATEWAY_SECRET,
            "KOPTER_API_CURSOR_KEY": CURSOR_KEY,
        }
        argv = [sys.executable, "-m", "kopter", "api", "--port", str(port)]
        child = spawn("isolation-api", argv, env, OUTPUT / "logs", cwd=ROOT)
        try:
            wait_for_port(child, port)
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
                yield Api(child, client, proxy)
        finally:
            child.stop()


def _notification_ids(customer: Customer) -> list[str]:
    """The tenant's notifications as the API names them, read straight from the table."""
    found = FrontendNotification.query(customer.tenant_id)
    return [notification_id(n.notification_key) for n in found]


def test_the_read_api_as_tenant_a_touches_only_its_own_keys(world: World, api: Api) -> None:
    a, other = world.a, world.customers[1]
    rng = random.Random(SEED + 2)
    principals = a.values(lambda r: (r.get("userIdentity") or {}).get("arn"))
    start = len(api.proxy.requests)
    listings = [
        ("/v1/accounts", {}),
        ("/v1/audit/aws", {"limit": str(rng.randint(3, 9))}),
        ("/v1/audit/aws", {"account": rng.choice(a.account_ids), "limit": "4"}),
        ("/v1/audit/aws", {"event_name": rng.choice(a.values(lambda r: r["eventName"]))}),
        ("/v1/audit/aws", {"user": rng.choice(principals), "limit": "2"}),
        ("/v1/audit/aws", {"errors": "true", "since": f"{DAY:%Y-%m-%d}T{rng.randrange(12):02}Z"}),
        ("/v1/audit/aws", {"account": rng.choice(other.account_ids)}),  # another's: nothing
        ("/v1/ec2/events", {"limit": "1"}),
        ("/v1/ec2/events", {"account": rng.choice(a.account_ids)}),
        ("/v1/price-graph", {"by": rng.choice(["account", "region", "instance-type"])}),
        ("/v1/notifications", {"limit": "1"}),
    ]
    answers = [api.pages(path, a, **params) for path, params in listings]
    assert answers[1] and answers[-1], "A's log and notifications are there to read"
    mine, theirs = _notification_ids(a), _notification_ids(other)
    assert mine and theirs
    marked = api.client.post(f"/v1/notifications/{mine[0]}/read", headers=api.headers(a))
    assert marked.status_code == 200, marked.text
    # Another tenant's notification, named by A: a 404, and only A's partition is asked.
    refused = api.client.post(f"/v1/notifications/{theirs[0]}/read", headers=api.headers(a))
    assert refused.status_code == 404
    end = len(api.proxy.requests)

    verdict = check(api.proxy.requests[start:end], a.owner, world.others)
    assert verdict.requests and not verdict.foreign, _report("the API", verdict.foreign)
    assert verdict.tables_written == {"FrontendNotifications"}
    for (path, params), items in zip(listings, answers, strict=True):
        shown = {item["account_id"] for item in items if "account_id" in item}
        assert shown <= set(a.account_ids), f"seed {SEED}: {path} {params}: {shown}"
        assert not _leaked_ids(world, json.dumps(items)), f"seed {SEED}: {path} {params}"

    # Negative control: the same server asked as the other tenant is flagged as not A's.
    assert api.pages("/v1/audit/aws", other)
    flagged = check(api.proxy.requests[end:], a.owner, world.others).foreign
    assert f"Query AuditLogEvents.tenant_id = {other.tenant_id!r}" in flagged


# --- 2. one account id, two tenants, the same moment ------------------------------------------


def test_two_tenants_registering_one_account_at_the_same_moment(world: World) -> None:
    """Builds on test_cli_accounts' sequential refusal: here both `kopter accounts add` run at
    once, and each one's transaction is held at its proxy until the other's is sent too: both
    are in flight together, neither process knowing of the other. The claim in Global decides:
    one wins, the other gets one line."""
    contenders = world.customers[1:3]
    account = f"{random.Random(SEED + 3).randrange(10**11, 10**12)}"
    both_sent = threading.Barrier(len(contenders), timeout=60)
    turns = itertools.count()
    proxies: list[RecordingProxy] = []

    def is_transaction(request: Recorded) -> bool:
        return operation(request) == f"{DYNAMODB_TARGET}TransactWriteItems"

    def in_turn_once_both_are_sent(request: Recorded) -> None:
        # DynamoDB serializes transactions on one item; moto does not (a cancelled one rolls
        # its tables back, the other's writes with them), so the second goes once the first
        # is answered.
        if not is_transaction(request):
            return
        with contextlib.suppress(threading.BrokenBarrierError):
            both_sent.wait()
        if next(turns):
            wait_for(
                lambda: any(is_transaction(r.request) for p in proxies for r in p.responses),
                60,
                "the first transaction answered",
            )

    proxies += [RecordingProxy(MOTO_PORT, in_turn_once_both_are_sent) for _ in contenders]

    def register(customer: Customer, proxy: RecordingProxy) -> Run:
        return world.kopter(
            "accounts",
            "add",
            "--tenant",
            customer.tenant_id,
            "--account-id",
            account,
            "--role-arn",
            role_arn(account),
            ok=None,
            proxy=proxy,
        )

    with ThreadPoolExecutor(len(contenders)) as pool:
        runs = list(pool.map(register, contenders, proxies))
    assert not both_sent.broken, "the two transactions were not in flight together"
    [won] = [r for r in runs if r.result.returncode == 0]
    [lost] = [r for r in runs if r.result.returncode != 0]
    by_id = {c.tenant_id: c for c in contenders}
    winner, loser = by_id[won.args[3]], by_id[lost.args[3]]
    assert f"account {account} connected" in won.result.stdout
    assert lost.result.stderr == (
        f"kopter: error: account {account} is already registered by another tenant\n"
    )
    assert lost.result.stdout == ""
    # The store agrees: the claim is the winner's, and only the winner has the account.
    assert accounts.account_owner(account) == winner.tenant_id
    assert account in {x.account_id for x in accounts.list_accounts(winner.tenant_id)}
    assert account not in {x.account_id for x in accounts.list_accounts(loser.tenant_id)}


# --- 3. no secret in any log ------------------------------------------------------------------

CREDENTIAL = re.compile(r"<(SecretAccessKey|SessionToken)>([^<]+)</\1>")


@dataclass(frozen=True)
class Log:
    source: str
    text: str
    # The output of `accounts add` and `accounts list --json` is the ExternalId, for the
    # operator to give the customer: only there may one show.
    shows_external_ids: bool = False


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


def handed_out(proxies: Iterable[RecordingProxy]) -> dict[str, str]:
    """Every secret key and session token AssumeRole answered through ``proxies``: value ->
    what it is."""
    found = {}
    for proxy in proxies:
        for answer in proxy.responses:
            if b"Action=AssumeRole" in answer.request.body:
                for kind, value in CREDENTIAL.findall(answer.body.decode()):
                    found[value] = f"a {kind} AssumeRole handed out"
    return found


def leaks(logs: Iterable[Log], secrets_by_value: dict[str, str]) -> list[str]:
    """Where each secret shows in the logs, as is or URL-encoded."""
    return [
        f"{what} in {log.source}"
        for log in logs
        for value, what in secrets_by_value.items()
        if value in log.text or quote_plus(value) in log.text
    ]


def test_no_external_id_credential_or_api_secret_reaches_a_log(
    world: World, a_jobs: Jobs, a_commands: list[Run], api: Api
) -> None:
    """Every log of every process of this module: the worker's (its tasks assumed A's roles, one
    of them denied), the API's (it listed the accounts), and each command's stdout and stderr
    (`accounts check` assumed roles inline)."""
    listed = api.client.get("/v1/accounts", headers=api.headers(world.a))
    assert listed.status_code == 200
    external_ids = {e: f"the ExternalId of {a}" for a, e in registered_external_ids(world).items()}
    assert not [what for e, what in external_ids.items() if e in listed.text]
    credentials = handed_out([world.worker_proxy, *(run.proxy for run in world.runs)])
    from_worker = handed_out([world.worker_proxy])
    assert from_worker and len(credentials) > len(from_worker), "roles assumed on both sides"
    api_secrets = {GATEWAY_SECRET: "the gateway secret", CURSOR_KEY: "the cursor key"}

    assert world.worker and world.worker.log_path and api.child.log_path
    api_log = api.child.log_path.read_text(errors="replace")
    assert "kopter.api.access" in api_log
    logs = [
        Log("the worker's log", world.worker.log_path.read_text(errors="replace")),
        Log("the API's log", api_log),
        *command_logs(world.runs),
    ]
    found = leaks(logs, {**credentials, **api_secrets})
    found += leaks([log for log in logs if not log.shows_external_ids], external_ids)
    assert not found, f"seed {SEED}: " + "\n".join(found)

    # Negative controls: a secret planted in a log is found; and `kopter accounts add`, whose
    # output is the ExternalId, is caught when scanned as if it should hide it.
    token, what = next(iter(from_worker.items()))
    planted = Log("a planted line", f"[INFO] assumed with {quote_plus(token)}")
    assert leaks([planted], from_worker) == [f"{what} in a planted line"]
    assert leaks([log for log in logs if log.shows_external_ids], external_ids)
