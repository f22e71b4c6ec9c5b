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

The generated tenants and queries come from SEED, which every failure names. The tenants and the
processes acting for them are tests/support/tenants.py's, the checker tests/support/isolation.py.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import random
import secrets
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus

import httpx
import pytest

from kopter import accounts
from kopter.api.identity import IDENTITY_HEADER, SECRET_HEADER
from kopter.devstack import Child, free_port, spawn, wait_for_port
from kopter.tables import GlobalItem
from tests.conftest import MOTO_PORT, OUTPUT, Workers, wait_for
from tests.support.isolation import (
    DYNAMODB_TARGET,
    PREFIX,
    Log,
    assumed_roles,
    check,
    handed_out,
    leaks,
    operation,
)
from tests.support.proxy import Recorded, RecordingProxy
from tests.support.samples import ROOT
from tests.support.tenants import (
    DAY,
    WORKER_QUEUES,
    Customer,
    Run,
    World,
    command_logs,
    generate_customers,
    leaked_ids,
    notification_ids,
    populate,
    purge_worker_queues,
    registered_external_ids,
    role_arn,
)

SEED = secrets.randbits(32)  # of the generated tenants and queries: every failure names it
GATEWAY_SECRET = secrets.token_urlsafe(32)
CURSOR_KEY = secrets.token_urlsafe(32)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The tenants and their data of every kind, instances in their accounts, and a worker on
    every queue A's jobs use."""
    purge_worker_queues()
    workers = Workers()
    world = World(generate_customers(SEED))
    with world.worker_proxy as proxy:
        try:
            world.worker = workers.start(
                "isolation",
                WORKER_QUEUES,
                env={"KOPTER_AWS_ENDPOINT_URL": proxy.url},
            )
            populate(world, tmp_path_factory.mktemp("isolation-trail"))
            workers.wait_ready(world.worker)
            yield world
        finally:
            workers.stop_all()


def _report(what: str, foreign: list[str]) -> str:
    shown = "\n  ".join(foreign[:20])
    return f"seed {SEED}: {what} touched what is not tenant A's ({len(foreign)}):\n  {shown}"


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
        assert not leaked_ids(world, run.result.stdout + run.result.stderr), run.result.stdout

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
        assert not leaked_ids(world, output), f"seed {SEED}: {command} showed {output}"
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
    claim = GlobalItem.owner_key(b.account_ids[0])
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
    mine, theirs = notification_ids(a), notification_ids(other)
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
        assert not leaked_ids(world, json.dumps(items)), f"seed {SEED}: {path} {params}"

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
