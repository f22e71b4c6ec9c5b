"""The recount of `kopter deploy cost`'s per-unit figures (``kopter/deploy/usage.py``): one real
`celery worker` on every work queue, behind a RecordingProxy in front of moto, runs each kind of
kopter's work for one tenant (CloudTrail files through the raw queue, the describer's first run
and an hour with no change, the aggregator, backups, the daily audit, an hour of the price list
with no new file) and the read API answers the web app's pages; ``tests/support/metering.py``
turns what each phase sent into what AWS bills, and ``figures`` divides it by the units of work.

A phase's figure is what the phase's work sent: the polls of idle queues are counted apart
(``polls_per_queue_second``), as is each job's first message, which beat sends
(``kopter.deploy.usage.beat_messages_per_day``).
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import httpx
import jwt

from kopter import aws, queues
from kopter.devstack import Child, free_port, spawn, wait_for_port
from kopter.pricing.offerserver import SAMPLE_OFFERS, OfferServer
from kopter.settings import get_settings
from tests.conftest import MOTO_PORT, OUTPUT, Workers, wait_for
from tests.support import chaos
from tests.support.drain import wait_drained
from tests.support.metering import Meter, Metered
from tests.support.proxy import RecordingProxy
from tests.support.samples import ROOT

ACCOUNTS, INSTANCES, TAGGED = 2, 25, 5  # per account, in one region: the describer bench's 25
FILES, RECORDS = 4, 50  # CloudTrail files, records per file
IDLE_SECONDS = 15.0
PER_RECORD_TABLES = ("AuditLogEvents", "Ec2Events", "FrontendNotifications")
RAW = queues.RAW_QUEUES[0]
ALL_QUEUES = queues.ALL_QUEUES
# What the web app asks on its pages (web/src/pages/): the unread badge, the cost page (its graph
# and the cost jumps among the notifications), the audit log, EC2 events, notifications, accounts.
API_PAGES = (
    "/v1/notifications?unread=true&limit=1000",
    "/v1/price-graph",
    "/v1/notifications?limit=1000",
    "/v1/audit/aws",
    "/v1/ec2/events",
    "/v1/notifications?limit=50",
    "/v1/accounts",
)
API_KEY = "recount-" + "k" * 40  # HS256: the API process checks it, the test signs with it
# What a message costs from its send to its delete (the receive is counted apart: only those
# that brought messages).
MESSAGE_ACTIONS = (
    "SendMessage",
    "SendMessageBatch",
    "DeleteMessage",
    "DeleteMessageBatch",
    "ChangeMessageVisibility",
    "ChangeMessageVisibilityBatch",
)
TIMED = re.compile(r"Task ([\w.]+)\[[\w-]+\] succeeded in ([\d.]+)s")
WORKER_ENV = {
    # Production's: the visibility keeper renews what runs past a third of it, as it would there.
    "KOPTER_VISIBILITY_TIMEOUT": "1800",
    "KOPTER_TASK_TIME_LIMIT": "300",
}


@dataclass
class Phase:
    metered: Metered
    log_bytes: int
    seconds: float
    task_seconds: dict[str, list[float]]  # by task name, as the worker logged each run


@dataclass
class Run:
    phases: dict[str, Phase] = field(default_factory=dict)
    api_requests: int = 0
    api_bytes: int = 0  # the answers' bodies, as sent
    api_log_bytes: int = 0
    snapshots: int = 0
    figures: dict[str, float] = field(default_factory=dict)


def recount(workers: Workers) -> Run:
    """Every phase, then the per-unit figures."""
    settings = get_settings()
    dynamodb = aws.client("dynamodb", settings)

    def fetch(table: str, key: dict[str, Any]) -> dict[str, Any] | None:
        return dynamodb.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item")

    meter = Meter(settings.prefix, fetch)
    estate = chaos.new_estate("recount", ACCOUNTS, seed=23)
    estate.launch(INSTANCES)
    run = Run()
    day = datetime.now(UTC)
    estate.add_files(FILES, RECORDS, day, seed=23)
    for account in estate.accounts:
        tagged = account.instances[:TAGGED]
        account.ec2.create_tags(Resources=tagged, Tags=[{"Key": "kopter:backup", "Value": "true"}])
    chaos.set_visibility_timeout(ALL_QUEUES, int(WORKER_ENV["KOPTER_VISIBILITY_TIMEOUT"]))
    try:
        with OfferServer(SAMPLE_OFFERS) as offers, RecordingProxy(MOTO_PORT) as proxy:
            env = {**WORKER_ENV, "KOPTER_AWS_ENDPOINT_URL": proxy.url}
            env["KOPTER_PRICING_URL"] = offers.url
            worker = workers.start("recount", ",".join(queues.WORK_QUEUES), env=env)
            workers.wait_ready(worker, 180)
            _phases(run, meter, proxy, worker, estate, day)
            workers.stop_all()  # its shutdown's calls go through the proxy: before it closes
    finally:
        chaos.set_visibility_timeout(ALL_QUEUES, settings.visibility_timeout)
    run.figures = figures(run)
    return run


def _phases(
    run: Run, meter: Meter, proxy: RecordingProxy, worker: Child, estate: chaos.Estate, day: Any
) -> None:
    from beat_schedule import beat_schedule
    from tasks.app import app
    from tasks.jobs import JOBS, follow

    tenant = estate.tenant

    def job(name: str, **kwargs: Any) -> Callable[[], None]:
        def go() -> None:
            # As `kopter run` sends it, with the worker's time limits (this suite's are 4 s).
            entry = beat_schedule()[JOBS[name].entry]
            limits = {"time_limit": 300, "soft_time_limit": 270}
            options = {**entry.get("options", {}), **limits}
            result = app.send_task(entry["task"], kwargs=kwargs, **options)
            follow(name, result, 240)

        return go

    def measure(name: str, action: Callable[[], None]) -> None:
        _drained()
        proxy.responses.clear()
        size, started = _size(worker), time.monotonic()
        action()
        _drained()
        elapsed = time.monotonic() - started
        answers = list(proxy.responses)
        logged = _read(worker, size)
        run.phases[name] = Phase(meter.measure(answers), len(logged), elapsed, _timed(logged))

    measure("idle", lambda: time.sleep(IDLE_SECONDS))
    measure("ingest", lambda: _notify(proxy.url, estate))
    # The same hour twice: the second run finds nothing changed (a redelivered run adds nothing).
    measure("describe_first", job("describer", tenant_id=tenant, spread_seconds=0))
    measure("aggregate", job("aggregator", tenant_id=tenant))
    measure("describe_quiet", job("describer", tenant_id=tenant, spread_seconds=0))
    measure("backup", job("backup", tenant_id=tenant))
    measure("audit", job("audit", tenant_id=tenant, day=day.date().isoformat()))
    job("pricing")()  # the sample's files are new once: the hour after is the usual one
    measure("pricing", job("pricing"))
    measure("api", lambda: _api(run, proxy.url, tenant))
    run.snapshots = ACCOUNTS * TAGGED


def _notify(endpoint: str, estate: chaos.Estate) -> None:
    """What S3 sends the raw queue for each file (through the proxy: SQS bills the queue's owner
    for S3's sends), then until every file is ingested."""
    settings = get_settings()
    sqs = boto3.client("sqs", region_name=settings.region, endpoint_url=endpoint)
    url = sqs.get_queue_url(QueueName=queues.sqs_name(settings, RAW))["QueueUrl"]
    for bucket, key in estate.files:
        sqs.send_message(QueueUrl=url, MessageBody=chaos.s3_notification(bucket, key))
    wait_for(lambda: chaos.ingested(estate.files) == set(estate.files), 240, "every file ingested")


def _api(run: Run, endpoint: str, tenant: str) -> None:
    """`kopter api` over the proxy, asked each page the web app loads."""
    port = free_port()
    env = {
        **os.environ,
        "KOPTER_AWS_ENDPOINT_URL": endpoint,
        "KOPTER_API_AUTH": "jwt",
        "KOPTER_API_JWT_ALGORITHM": "HS256",
        "KOPTER_API_JWT_KEY": API_KEY,
        "KOPTER_API_CURSOR_KEY": API_KEY,
    }
    argv = [sys.executable, "-m", "kopter", "api", "--host", "127.0.0.1", "--port", str(port)]
    api = spawn("recount-api", argv, env, OUTPUT / "logs", cwd=ROOT)
    try:
        wait_for_port(api, port, 120)
        logged = _size(api)
        token = jwt.encode({"sub": tenant, "exp": int(time.time()) + 600}, API_KEY, "HS256")
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            for page in API_PAGES:
                answer = client.get(page, headers=headers)
                assert answer.status_code == 200, (page, answer.text)
                run.api_bytes += answer.num_bytes_downloaded
        time.sleep(1)  # the access log's last line
        run.api_log_bytes = _size(api) - logged
    finally:
        api.stop()
    run.api_requests = len(API_PAGES)


def _drained() -> None:
    for queue in ALL_QUEUES:
        wait_drained(queue, 240)


def _read(child: Child, offset: int) -> bytes:
    with open(str(child.log_path), "rb") as log:
        log.seek(offset)
        return log.read()


def _timed(logged: bytes) -> dict[str, list[float]]:
    """Each task's run time, as Celery logs it ("Task NAME[id] succeeded in 0.25s")."""
    found: dict[str, list[float]] = {}
    for name, seconds in TIMED.findall(logged.decode(errors="replace")):
        found.setdefault(name, []).append(float(seconds))
    return found


def _size(child: Child) -> int:
    return Path(child.log_path).stat().st_size if child.log_path else 0


# --- the figures ------------------------------------------------------------------------------


def figures(run: Run) -> dict[str, float]:
    """The per-unit figures of ``kopter.deploy.usage``, from the phases."""
    p = {name: phase.metered for name, phase in run.phases.items()}
    regions, instances = ACCOUNTS, ACCOUNTS * INSTANCES  # one region an account
    records = FILES * RECORDS
    ingest, agg, backup, audit = p["ingest"], p["aggregate"], p["backup"], p["audit"]
    first, quiet = _minus(p["describe_first"], agg), _minus(p["describe_quiet"], agg)
    work = [phase for name, phase in run.phases.items() if name != "idle"]
    tasks = sum(sum(phase.metered.deleted.values()) for phase in work)
    idle = p["idle"].empty_receives
    out = {
        "polls_per_queue_second": sum(idle[q] for q in ALL_QUEUES) / len(ALL_QUEUES) / IDLE_SECONDS,
        "requests_per_message": _requests_per_message(work),
        "visibility_requests": sum(
            phase.metered.sqs_actions[a]
            for phase in work
            for a in ("ChangeMessageVisibility", "ChangeMessageVisibilityBatch")
        ),
        "log_bytes_per_task": sum(phase.log_bytes for phase in work) / tasks,
        # CloudTrail: the raw notification and the ingest task; what its records raise.
        "messages_per_file": (ingest.deleted[RAW] + ingest.deleted["ingest"]) / FILES,
        "messages_per_record": ingest.deleted["notifications"] / records,
        "rru_per_file": (ingest.reads() - ingest.reads(PER_RECORD_TABLES)) / FILES,
        "wru_per_file": (ingest.writes() - ingest.writes(PER_RECORD_TABLES)) / FILES,
        "rru_per_record": ingest.reads(PER_RECORD_TABLES) / records,
        "wru_per_record": ingest.writes(PER_RECORD_TABLES) / records,
        "bytes_per_record": ingest.stored["AuditLogEvents"] / records,
        "bytes_per_file": ingest.stored["Global"] / FILES,
        # The describer, its chord's aggregation taken out (the aggregate phase is the same).
        "messages_per_region_hour": (p["describe_quiet"].deleted["describer"] - 1) / regions,
        "rru_per_region_hour": (quiet.reads() - quiet.reads(["Ec2Instances"])) / regions,
        "rru_per_instance_hour": quiet.reads(["Ec2Instances"]) / instances,
        "wru_per_region_hour": quiet.writes() / regions,
        "wru_per_change": (first.writes() - quiet.writes()) / instances,
        "bytes_per_change": first.stored["Ec2Events"] / instances,
        "bytes_per_instance": first.stored["Ec2Instances"] / instances,
        # The aggregator: one tenant's task, its accounts' points.
        "messages_per_tenant_aggregation": agg.deleted["aggregator"]
        - 1
        + agg.deleted["notifications"],
        "rru_per_account_aggregation": agg.reads() / ACCOUNTS,
        "wru_per_account_aggregation": agg.writes() / ACCOUNTS,
        "bytes_per_point": agg.stored["PriceGraphData"] / ACCOUNTS,
        # Backups: a task an account and region, a claim and a record a snapshot.
        "messages_per_backup_region": (
            backup.deleted["backup"] - 1 + backup.deleted["notifications"]
        )
        / regions,
        "rru_per_backup_region": (backup.reads() - backup.reads(["Ec2Snapshots"])) / regions,
        "wru_per_backup_region": (backup.writes() - backup.writes(["Ec2Snapshots"])) / regions,
        "rru_per_snapshot": backup.reads(["Ec2Snapshots"]) / run.snapshots,
        "wru_per_snapshot": backup.writes(["Ec2Snapshots"]) / run.snapshots,
        "bytes_per_snapshot": backup.stored["Ec2Snapshots"] / run.snapshots,
        # The daily audit of one tenant's day: its records read once, its digest written.
        "messages_per_tenant_audit_day": audit.deleted["audit"]
        - 1
        + audit.deleted["notifications"],
        "rru_per_audited_record": audit.reads(["AuditLogEvents"]) / records,
        "rru_per_tenant_audit_day": audit.reads() - audit.reads(["AuditLogEvents"]),
        "wru_per_tenant_audit_day": audit.writes(),
        "bytes_per_digest": audit.stored["AuditDigests"],
        # An hour of the price list with no new file.
        "messages_per_pricing_hour": p["pricing"].deleted["pricing"] - 1,
        "rru_per_pricing_hour": p["pricing"].reads(),
        "wru_per_pricing_hour": p["pricing"].writes(),
        "rru_per_api_request": p["api"].reads() / run.api_requests,
        "api_bytes_per_request": run.api_bytes / run.api_requests,
        "api_log_bytes_per_request": run.api_log_bytes / run.api_requests,
    }
    return out


def _requests_per_message(work: Iterable[Phase]) -> float:
    """SQS requests of a message, from its send to its delete: sends, receives that brought
    messages, deletes and visibility changes, over the messages deleted. (A process's first use
    of a queue also asks for its URL and attributes, once; polls are counted apart.) A job's first
    message is sent from here, straight to moto: it is counted as sent."""
    requests = messages = 0.0
    for phase in work:
        m = phase.metered
        messages += sum(m.deleted.values())
        requests += sum(m.sqs_actions[a] for a in MESSAGE_ACTIONS) + sum(m.receives.values())
        requests += sum(m.deleted.values()) - sum(m.sent.values())  # sent from outside
    return requests / messages


def _minus(a: Metered, b: Metered) -> Metered:
    """``a`` less ``b``, table by table (what a describer run did besides its aggregation)."""
    out = Metered()
    out.wru.update({t: a.wru[t] - b.wru[t] for t in a.wru.keys() | b.wru.keys()})
    out.rru.update({t: a.rru[t] - b.rru[t] for t in a.rru.keys() | b.rru.keys()})
    out.stored.update(a.stored)
    out.deleted.update(a.deleted)
    return out
