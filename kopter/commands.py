"""The `kopter` commands. `kopter.cli.main` runs them and turns errors into one line."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import click

from kopter import accounts, queues
from kopter.cli import onboarding
from kopter.cli.health import health
from kopter.cli.ingest import ingest
from kopter.cli.output import cell, emit, json_option, jsonable, tenant_option
from kopter.cli.pricing import pricing_group
from kopter.cli.web import api, web
from kopter.errors import KopterError
from kopter.settings import SQS_MAX_DELAY_SECONDS, get_settings


def _csv(_: Any, __: Any, value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    return tuple(v.strip() for v in value.split(",") if v.strip())


# --- commands ---------------------------------------------------------------------------------


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """kopter: CloudTrail audit log, EC2 fleet, prices and costs for every customer account.

    Settings come from KOPTER_* environment variables (see the README); `kopter settings`
    shows what this process reads.
    """


cli.add_command(ingest)  # commands in modules of their own
cli.add_command(pricing_group)
cli.add_command(health)
cli.add_command(api)
cli.add_command(web)


@cli.command()
def settings() -> None:
    """Show the settings this process reads from the environment."""
    for name, value in get_settings().for_display().items():
        click.echo(f"{name}={value}")


@cli.command()
@json_option
def bootstrap(as_json: bool) -> None:
    """Create every SQS queue (with its DLQ) and DynamoDB table; safe to run again."""
    from kopter.bootstrap import bootstrap as run_bootstrap

    changes = run_bootstrap(get_settings())
    emit((asdict(c) for c in changes), as_json, ["kind", "name", "action", "detail"])
    if not as_json:
        changed = [c for c in changes if c.action != "unchanged"]
        summary = f"{len(changed)} of {len(changes)} resources created or updated"
        click.echo(summary if changed else "nothing to change: every queue and table is in place")


@cli.command()
@json_option
def status(as_json: bool) -> None:
    """Each queue's depth: visible, in flight, delayed, in its DLQ, and the oldest message's
    age (CloudWatch's ApproximateAgeOfOldestMessage, where AWS publishes it); each beat entry's
    last and next run; each worker that answers over the control plane, with its queues."""
    from kombu.exceptions import OperationalError
    from redis.exceptions import ConnectionError as RedisConnectionError

    rows = [asdict(d) for d in queues.depths(get_settings())]
    if not as_json:
        for row in rows:
            age = row["oldest_age_seconds"]
            row["oldest_age"] = "-" if age is None else f"{age:.0f}s"
    emit(
        rows,
        as_json,
        ["queue", "visible", "in_flight", "delayed", "dlq_visible", "oldest_age", "name"],
    )
    # Beat and the workers are known through Redis: without it, the queues above still show.
    try:
        from tasks.status import beat_entries, workers

        entries, alive = beat_entries(), workers()
    except (RedisConnectionError, OperationalError) as e:
        raise KopterError(f"beat entries and workers unknown: cannot reach Redis: {e}") from None
    if not as_json:
        click.echo()
    emit(entries, as_json, ["beat_entry", "last_run", "next_run"])
    if not as_json:
        click.echo()
    emit(alive, as_json, ["worker", "alive", "queues"])


@cli.group()
def dlq() -> None:
    """Dead-letter queues: what was parked and why, and sending it back."""


@dlq.command("show")
@click.argument("queue")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True)
@json_option
def dlq_show(queue: str, limit: int, as_json: bool) -> None:
    """The messages parked in QUEUE's DLQ (a short name: `audit`), and why: a task's last
    failure from the result backend, or the CloudTrail bridge's reason. They stay parked."""
    from kopter import dlq as dead_letters

    rows = [asdict(m) for m in dead_letters.show(get_settings(), queue, limit)]
    if not as_json:
        for row in rows:
            row["what"] = row["task"] or row["body"][:60]
    emit(rows, as_json, ["message_id", "sent_at", "receive_count", "what", "args", "reason"])


@dlq.command("redrive")
@click.argument("queue")
@click.option("--limit", type=click.IntRange(min=1), help="Move at most this many (default all).")
def dlq_redrive(queue: str, limit: int | None) -> None:
    """Send QUEUE's parked messages back to QUEUE, once the cause is fixed."""
    from kopter import dlq as dead_letters

    moved = dead_letters.redrive(get_settings(), queue, limit)
    click.echo(f"{moved} messages moved from {queue}'s DLQ back to {queue}")


# --- tenants ----------------------------------------------------------------------------------


@cli.group()
def tenants() -> None:
    """Customers."""


def _tenant_row(t: Any) -> dict[str, Any]:
    return {"tenant_id": t.tenant_id, "name": t.name, "created_at": t.created_at}


@tenants.command("add")
@click.argument("name")
@click.option("--tenant-id", help="The customer's identity id (a new id is made if omitted).")
@json_option
def tenants_add(name: str, tenant_id: str | None, as_json: bool) -> None:
    """Register a customer; prints its tenant id."""
    tenant = accounts.add_tenant(name, tenant_id)
    if as_json:
        emit([_tenant_row(tenant)], True, [])
    else:
        click.echo(tenant.tenant_id)


@tenants.command("list")
@json_option
def tenants_list(as_json: bool) -> None:
    """Every customer."""
    emit(map(_tenant_row, accounts.list_tenants()), as_json, ["tenant_id", "name", "created_at"])


# --- accounts ---------------------------------------------------------------------------------


@cli.group("accounts")
def accounts_group() -> None:
    """Customers' AWS accounts."""


def _account_row(a: Any) -> dict[str, Any]:
    return {
        "tenant_id": a.tenant_id,
        "account_id": a.account_id,
        "role_arn": a.role_arn,
        "external_id": a.external_id,
        "regions": list(a.regions),
        "cloudtrail_bucket": a.cloudtrail_bucket,
        "cloudtrail_prefix": a.cloudtrail_prefix,
        "healthy": a.healthy,
        "health_reason": a.health_reason,
        "last_success_at": a.last_success_at,
        "created_at": a.created_at,
        "rotation_pending": bool(a.previous_external_id),
        "removed_at": a.removed_at,
    }


@accounts_group.command("add")
@tenant_option
@click.option("--account-id", required=True, help="The 12-digit AWS account id.")
@click.option(
    "--role-arn",
    help="The role kopter assumes there (default: the one `kopter accounts template` creates).",
)
@click.option(
    "--regions",
    callback=_csv,
    help="Comma-separated regions to describe (default: KOPTER_REGION).",
)
@click.option("--cloudtrail-bucket", help="S3 bucket CloudTrail writes this account's logs to.")
@click.option("--cloudtrail-prefix", help="Key prefix of the trail in that bucket.")
@click.option("--with-trail", is_flag=True, help="The link's stack also creates the trail.")
@json_option
def accounts_add(
    tenant: str,
    account_id: str,
    role_arn: str | None,
    regions: tuple[str, ...] | None,
    cloudtrail_bucket: str | None,
    cloudtrail_prefix: str | None,
    with_trail: bool,
    as_json: bool,
) -> None:
    """Connect an AWS account; prints the ExternalId its role's trust policy must require, and
    the quick-create link of the stack that creates that role."""
    from kopter.cli import onboarding

    if with_trail and not cloudtrail_bucket:
        raise KopterError("--with-trail needs --cloudtrail-bucket: the bucket the stack creates")
    request = accounts.AccountRequest(
        account_id,
        role_arn or onboarding.default_role_arn(account_id),
        regions or (get_settings().region,),
        cloudtrail_bucket,
        cloudtrail_prefix,
    )
    account = accounts.add_account(accounts.resolve_tenant(tenant), request)
    onboarding.keep_raw_queue_policy(get_settings(), account)
    link = onboarding.quick_create_link(account, with_trail)
    if as_json:
        emit([{**_account_row(account), "quick_create_link": link}], True, [])
        return
    click.echo(f"account {account.account_id} connected; its ExternalId is:")
    click.echo(account.external_id)
    click.echo(onboarding.onboarding_hint(account, link))


@accounts_group.command("list")
@tenant_option
@click.option("--all", "everything", is_flag=True, help="Also accounts disconnected.")
@json_option
def accounts_list(tenant: str, everything: bool, as_json: bool) -> None:
    """A tenant's accounts, with their health and last success."""
    listed = accounts.list_accounts(accounts.resolve_tenant(tenant).tenant_id, everything)
    columns = ["account_id", "regions", "healthy", "last_success_at", "role_arn"]
    emit(map(_account_row, listed), as_json, columns + (["removed_at"] if everything else []))


@accounts_group.command("check")
@tenant_option
@click.option("--account-id", required=True)
@click.option(
    "--on-worker",
    is_flag=True,
    help="Run the check on a `describer` worker, through SQS: proves the workers' credentials "
    "reach the account, not just this machine's.",
)
@click.option("--timeout", default=120, show_default=True, help="Seconds --on-worker waits.")
@json_option
def accounts_check(
    tenant: str, account_id: str, on_worker: bool, timeout: int, as_json: bool
) -> None:
    """Assume the account's role (with its ExternalId) and try each permission it grants, one
    line each: in each region DescribeInstances, DescribeSnapshots and the snapshot rights (by
    EC2's DryRun), then the CloudTrail bucket's listing and a log file's read if a bucket is
    registered. Records the account's health."""
    from kopter.crossaccount import shared_sessions

    account = accounts.get_account(accounts.resolve_tenant(tenant).tenant_id, account_id)
    if on_worker:
        from tasks.describer import check_account

        queues.verify_queues(get_settings(), ["describer"])
        rows = _wait(check_account.delay(account.tenant_id, account.account_id), timeout)
    else:
        settings = get_settings()
        rows = [
            asdict(c) for c in accounts.check_account(account, shared_sessions(settings), settings)
        ]
    emit(rows, as_json, ["name", "ok", "detail"])
    if not all(row["ok"] for row in rows):
        sys.exit(1)


# --- audit log --------------------------------------------------------------------------------


@cli.command()
@tenant_option
@click.option("--since", help="From this ISO date or time (UTC), inclusive.")
@click.option("--until", help="Up to this ISO date or time (UTC), exclusive.")
@click.option("--account", help="Only this account id.")
@click.option("--event-name", help="Only this API call, e.g. RunInstances.")
@click.option("--event-source", help="Only this service, e.g. ec2.amazonaws.com.")
@click.option("--user", help="Only this principal ARN.")
@click.option("--errors", is_flag=True, help="Only calls that failed or were denied.")
@click.option("--limit", type=click.IntRange(1), default=100, show_default=True)
@json_option
def audit(
    tenant: str,
    since: str | None,
    until: str | None,
    account: str | None,
    event_name: str | None,
    event_source: str | None,
    user: str | None,
    errors: bool,
    limit: int,
    as_json: bool,
) -> None:
    """A tenant's audit log (CloudTrail), newest first."""
    from kopter.cloudtrail.query import AuditQuery, as_row, cloudtrail_time, search

    query = AuditQuery(
        tenant_id=accounts.resolve_tenant(tenant).tenant_id,
        since=cloudtrail_time(since) if since else None,
        until=cloudtrail_time(until) if until else None,
        account=account,
        event_name=event_name,
        event_source=event_source,
        user=user,
        errors_only=errors,
        limit=limit,
    )
    columns = ["event_time", "account_id", "event_name", "principal_arn", "source_ip", "error_code"]
    emit((as_row(event) for event in search(query)), as_json, columns)


@cli.command()
@tenant_option
@click.option("--account", required=True, help="The account id whose logs to ingest.")
@click.option("--since", required=True, help="First day (ISO date, UTC).")
@click.option("--until", help="Last day, inclusive (default: today).")
def backfill(tenant: str, account: str, since: str, until: str | None) -> None:
    """Enqueue every log object of the account's CloudTrail bucket since a day, for the
    `ingest` workers. Objects already ingested are skipped by the workers."""
    from datetime import UTC, date, datetime

    from kopter.cloudtrail.backfill import days, log_roots, objects_of_day
    from kopter.crossaccount import shared_sessions
    from tasks.ingest import ingest_object

    queues.verify_queues(get_settings(), ["ingest"])
    connected = accounts.get_account(accounts.resolve_tenant(tenant).tenant_id, account)
    try:
        first = date.fromisoformat(since)
        last = date.fromisoformat(until) if until else datetime.now(UTC).date()
    except ValueError as e:
        raise KopterError(f"--since/--until: {e}") from None
    settings = get_settings()
    s3 = shared_sessions(settings).client(accounts.target(connected), "s3", settings.region)
    roots = log_roots(s3, connected)
    if not roots:
        raise KopterError(
            f"no CloudTrail logs of account {account} under s3://{connected.cloudtrail_bucket}/"
            f"{connected.cloudtrail_prefix or ''}"
        )
    total = 0
    for day in days(first, last):
        for root in roots:
            for region in connected.regions:
                for obj in objects_of_day(s3, connected, root, region, day):
                    ingest_object.delay(obj.bucket, obj.key)
                    total += 1
        click.echo(f"backfill: {day} done, {total} objects enqueued so far", err=True)
    click.echo(f"enqueued {total} log objects of account {account} since {first}")


# --- EC2 ------------------------------------------------------------------------------------------


@cli.command()
@tenant_option
@click.option("--since", help="From this ISO date or time (UTC).")
@click.option("--account", help="Only this account id.")
@click.option("--limit", type=click.IntRange(1), default=100, show_default=True)
@json_option
def events(tenant: str, since: str | None, account: str | None, limit: int, as_json: bool) -> None:
    """What changed in a tenant's EC2 fleets (launched, started, stopped, terminated, resized,
    retagged), newest first."""
    from kopter.cloudtrail.query import cloudtrail_time
    from kopter.tables import Ec2Event

    tenant_id = accounts.resolve_tenant(tenant).tenant_id
    key = Ec2Event.event_key >= cloudtrail_time(since) if since else None
    source: Any = Ec2Event.by_account if account else Ec2Event
    found = source.query(
        f"{tenant_id}#{account}" if account else tenant_id,
        range_key_condition=key,
        scan_index_forward=False,
        limit=limit,
    )
    from kopter.ec2.events import view

    emit(
        (view(e) for e in found),
        as_json,
        ["occurred_at", "account_id", "region", "instance_id", "kind", "detail"],
    )


# --- notifications ----------------------------------------------------------------------------


@cli.command("notifications")
@tenant_option
@click.option("--unread", is_flag=True, help="Only those not read yet.")
@click.option("--limit", type=click.IntRange(1), default=100, show_default=True)
@json_option
def notifications_list(tenant: str, unread: bool, limit: int, as_json: bool) -> None:
    """What a tenant's UI shows, newest first."""
    from kopter.notifications import listing

    rows = (
        {
            "notification_key": n.notification_key,
            "created_at": n.created_at,
            "kind": n.kind,
            "subject": n.subject,
            "severity": n.severity,
            "title": n.title,
            "body": n.body,
            "links": n.links,
            "read": n.read,
        }
        for n in listing(accounts.resolve_tenant(tenant).tenant_id, unread, limit)
    )
    emit(rows, as_json, ["created_at", "severity", "kind", "title", "read"])


# --- costs --------------------------------------------------------------------------------------


@cli.command()
@tenant_option
@click.option("--since", help="From this ISO date or time, UTC (default: 24 hours ago).")
@click.option("--until", help="Up to this ISO date or time, UTC (default: now).")
@click.option(
    "--by", type=click.Choice(["account", "region", "instance-type"]), help="Split each hour."
)
@json_option
def graph(tenant: str, since: str | None, until: str | None, by: str | None, as_json: bool) -> None:
    """A tenant's EC2 cost per hour (USD, on-demand prices), oldest first."""
    from kopter.cloudtrail.query import cloudtrail_time
    from kopter.costs.aggregator import graph as cost_graph

    tenant_id = accounts.resolve_tenant(tenant).tenant_id
    now = datetime.now(UTC)
    start = _utc(cloudtrail_time(since)) if since else now - timedelta(hours=24)
    end = _utc(cloudtrail_time(until)) if until else now
    columns = ["hour", *([by.replace("-", "_")] if by else []), "cost_usd"]
    emit(cost_graph(tenant_id, start, end, by), as_json, columns)


def _utc(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


# --- prices -----------------------------------------------------------------------------------


def _usd(amount: Decimal | None) -> str | None:
    """Exact, in plain digits without trailing zeros (DynamoDB and the files spell them
    differently)."""
    return None if amount is None else format(amount.normalize(), "f")


@cli.command()
@click.option("--region", required=True, help="An AWS region, e.g. us-east-1.")
@click.option("--instance-type", help="e.g. m5.large")
@click.option("--os", "operating_system", help="Linux, Windows, RHEL, SUSE, …")
@click.option("--tenancy", help="Shared, Dedicated or Host.")
@click.option("--gone", "include_gone", is_flag=True, help="Also products no longer offered.")
@json_option
def prices(
    region: str,
    instance_type: str | None,
    operating_system: str | None,
    tenancy: str | None,
    include_gone: bool,
    as_json: bool,
) -> None:
    """Look up stored EC2 prices (USD, exact)."""
    from kopter.pricing.store import find_prices

    rows: Iterable[dict[str, Any]] = (
        {
            "instance_type": p.instance_type,
            "os": p.operating_system,
            "tenancy": p.tenancy,
            "license": p.license_model,
            "software": p.pre_installed_sw,
            "on_demand_hourly_usd": _usd(p.on_demand_hourly_usd),
            "reserved": [
                {
                    "lease": r.lease_length,
                    "class": r.offering_class,
                    "option": r.purchase_option,
                    "upfront_usd": _usd(r.upfront_usd),
                    "hourly_usd": _usd(r.hourly_usd),
                }
                for r in p.reserved
            ],
            "sku": p.sku,
            "version": p.offer_version,
            "gone": p.gone,
        }
        for p in find_prices(region, instance_type, operating_system, tenancy, include_gone)
    )
    if as_json:
        emit(rows, True, [])
        return
    table = [{**r, "reserved": len(r["reserved"]), "gone": r["gone"] or None} for r in list(rows)]
    emit(
        table,
        False,
        [
            "instance_type",
            "os",
            "tenancy",
            "license",
            "software",
            "on_demand_hourly_usd",
            "reserved",
        ]
        + (["gone"] if include_gone else []),
    )


# --- daily audit ------------------------------------------------------------------------------


@cli.command()
@tenant_option
@click.option("--date", "day", help="The day (ISO date, UTC; default: today).")
@json_option
def digest(tenant: str, day: str | None, as_json: bool) -> None:
    """A tenant's daily audit digest: the findings with their severity, denied and failed calls
    by principal, calls by principal and by service. `kopter run audit` makes it."""
    from kopter.cloudtrail.digest import as_dict, get_digest

    owner = accounts.resolve_tenant(tenant)
    when = date.fromisoformat(_iso_date(day)) if day else datetime.now(UTC).date()
    stored = get_digest(owner.tenant_id, when)
    if stored is None:
        raise KopterError(
            f"no audit digest of tenant {owner.name} for {when}: "
            f"`kopter run audit --tenant {tenant} --date {when}` makes it"
        )
    d = as_dict(stored)
    if as_json:
        emit([d], True, [])
        return
    click.echo(
        f"audit digest of {owner.name} for {d['day']} (computed {cell(d['computed_at'])}): "
        f"{d['records']} records, {d['denied_calls']} denied, {d['failed_calls']} failed, "
        f"{d['findings_total']} findings"
    )
    findings = [
        {**f, "calls": _counts(f["calls"]), "technique": f.get("technique", {}).get("id")}
        for f in d["findings"]
    ]
    columns = [
        "severity", "rule", "technique", "account_id", "principal", "count", "calls", "first_at"
    ]  # fmt: skip
    _section("findings", findings, columns)
    denied = [{**r, "calls": _counts(r["calls"])} for r in d["denied"]]
    _section("denied calls by principal", denied, ["count", "principal", "calls"])
    failed = [{**r, "errors": _counts(r["errors"])} for r in d["failed"]]
    _section(
        "failed calls by principal (other than denied)", failed, ["count", "principal", "errors"]
    )
    shown = len(d["by_principal"])
    busiest = f" (the {shown} busiest of {d['principals']})" if d["principals"] > shown else ""
    by_principal = [{"calls": n, "principal": p} for p, n in d["by_principal"].items()]
    _section(f"calls by principal{busiest}", by_principal, ["calls", "principal"])
    by_source = [{"calls": n, "event_source": s} for s, n in d["by_source"].items()]
    _section("calls by event source", by_source, ["calls", "event_source"])


def _section(title: str, rows: list[dict[str, Any]], columns: Sequence[str]) -> None:
    click.echo(f"\n{title}:")
    emit(rows, False, columns)


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{name}: {n}" for name, n in counts.items())


# --- backups ----------------------------------------------------------------------------------


@cli.command()
@tenant_option
@click.option("--account", help="Only this account id.")
@json_option
def snapshots(tenant: str, account: str | None, as_json: bool) -> None:
    """The snapshots the backup job took of a tenant's volumes (and failed to, or deleted when
    they expired), newest window first."""
    from kopter.ec2.backup import listing

    tenant_id = accounts.resolve_tenant(tenant).tenant_id
    if account:
        account_ids = [accounts.get_account(tenant_id, account).account_id]
    else:
        account_ids = [a.account_id for a in accounts.list_accounts(tenant_id)]
    rows = (
        {
            "window": s.window,
            "account_id": s.account_id,
            "region": s.region,
            "instance_id": s.instance_id,
            "volume_id": s.volume_id,
            "snapshot_id": s.snapshot_id,
            "state": s.state,
            "expires_on": s.expires_on,
            "failure": s.failure,
        }
        for s in listing(tenant_id, account_ids)
    )
    columns = ["window", "account_id", "region", "instance_id", "volume_id", "snapshot_id"]
    emit(rows, as_json, [*columns, "state", "expires_on", "failure"])


# --- jobs -------------------------------------------------------------------------------------

JOBS = {
    "pricing": "ec2-pricing",
    "describer": "ec2-describer",
    "aggregator": "aggregator",
    "backup": "backup-job",
    "audit": "audit",
}


@cli.command("run")
@click.argument("job", type=click.Choice(sorted(JOBS)))
@click.option("--tenant", help="Just this tenant (not for pricing, which is not per tenant).")
@click.option("--date", "day", help="audit only: the day to digest (ISO date, UTC).")
@click.option("--hour", help="aggregator only: the hour to cost (ISO time; default the last).")
@click.option("--wait", is_flag=True, help="Block until the job finishes and print a summary.")
@click.option("--timeout", default=600, show_default=True, help="Seconds --wait waits.")
@click.option(
    "--spread",
    type=click.IntRange(0, SQS_MAX_DELAY_SECONDS),
    help="describer only: spread its tasks over this many seconds, as beat's hourly run does "
    "(default: every task starts now).",
)
def run_job(
    job: str,
    tenant: str | None,
    day: str | None,
    hour: str | None,
    wait: bool,
    timeout: int,
    spread: int | None,
) -> None:
    """Enqueue what beat would enqueue for JOB, now: every task of it starts at once."""
    from beat_schedule import beat_schedule
    from tasks import app

    entry = beat_schedule()[JOBS[job]]
    kwargs: dict[str, Any] = {}
    if tenant:
        if job == "pricing":
            raise KopterError("the price list is not per tenant: drop --tenant")
        kwargs["tenant_id"] = accounts.resolve_tenant(tenant).tenant_id
    if day:
        if job != "audit":
            raise KopterError("--date applies to `kopter run audit` only")
        kwargs["day"] = _iso_date(day)
    if job == "describer":
        kwargs["spread_seconds"] = spread or 0
    elif spread is not None:
        raise KopterError("--spread applies to `kopter run describer` only")
    if hour:
        if job != "aggregator":
            raise KopterError("--hour applies to `kopter run aggregator` only")
        kwargs["hour"] = _iso_hour(hour)
    queues.verify_queues(get_settings(), queues.WORK_QUEUES)
    result = app.send_task(entry["task"], kwargs=kwargs, **entry.get("options", {}))
    click.echo(f"enqueued {entry['task']} as {result.id}")
    if not wait:
        return
    value = _wait(result, timeout)
    if isinstance(value, dict) and value.get("group"):
        from celery.result import GroupResult

        # A job that fans out returns its group: wait for every task of it too.
        results = _wait(GroupResult.restore(value.pop("group"), app=app), timeout)
        value = SUMMARIES.get(job, _results)(value, results)
    click.echo(json.dumps(value, default=jsonable, indent=2))
    if isinstance(value, dict) and value.get("failed"):
        raise KopterError(f"{job}: {value['failed']} of its tasks failed (above)")


def _iso_date(text: str) -> str:
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError:
        raise KopterError(f"--date {text!r} is not an ISO date like 2026-11-27") from None


def _iso_hour(text: str) -> str:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise KopterError(f"--hour {text!r} is not an ISO time like 2026-11-27T13:00Z") from None
    return (
        (moment if moment.tzinfo else moment.replace(tzinfo=UTC))
        .astimezone(UTC)
        .replace(minute=0, second=0, microsecond=0)
        .isoformat()
    )


def _results(fan_out: dict[str, Any], results: list[Any]) -> dict[str, Any]:
    return {**fan_out, "results": results}


def _describer_summary(fan_out: dict[str, Any], results: list[Any]) -> dict[str, Any]:
    """Add up what the tasks of a describer run found."""
    events: dict[str, int] = {}
    for r in results:
        for kind, count in r.get("events", {}).items():
            events[kind] = events.get(kind, 0) + count
    return {
        "run_at": fan_out["run_at"],
        "regions_described": sum(r["status"] == "described" for r in results),
        "unhealthy": sorted({r["reason"] for r in results if r["status"] == "unhealthy"}),
        "skipped_unhealthy_accounts": fan_out["skipped"],
        "instances": sum(r.get("instances", 0) for r in results),
        "events": events,
    }


def _pricing_summary(fan_out: dict[str, Any], results: list[Any]) -> dict[str, Any]:
    failed = sum(r["status"] == "failed" for r in results)
    return {**fan_out, "imports": results, "failed": failed}


def _backup_summary(fan_out: dict[str, Any], results: list[Any]) -> dict[str, Any]:
    """Add up what the tasks of a backup run did; each failed volume is listed."""
    done = [r for r in results if r["status"] == "backed-up"]
    return {
        "window": fan_out["window"],
        "regions_backed_up": len(done),
        "unhealthy": sorted({r["reason"] for r in results if r["status"] == "unhealthy"}),
        "skipped_unhealthy_accounts": fan_out["skipped"],
        **{k: sum(r[k] for r in done) for k in ("instances", "created", "adopted", "existing")},
        "in_progress": sum(r["in_progress"] for r in done),
        "failed_volumes": [
            {"account_id": r["account"], "region": r["region"], **f}
            for r in done
            for f in r["failed"]
        ],
        "expired": sum(r["expired"] for r in done),
        "expiry_failed": [e for r in done for e in r["expiry_failed"]],
    }


# How `kopter run JOB --wait` sums up a job that fans out (default: every task's result).
def _audit_summary(fan_out: dict[str, Any], results: list[Any]) -> dict[str, Any]:
    """Add up what the tenants' digests found (`kopter digest` shows one)."""
    findings: dict[str, int] = {}
    for r in results:
        for severity, count in r["findings"].items():
            findings[severity] = findings.get(severity, 0) + count
    totals = {k: sum(r[k] for r in results) for k in ("records", "denied_calls", "failed_calls")}
    notified = sum(r["notified"] for r in results)
    return {
        "days": fan_out["days"],
        "tenants": fan_out["tenants"],
        **totals,
        "findings": findings,
        "notified": notified,
    }


SUMMARIES: dict[str, Callable[[dict[str, Any], list[Any]], dict[str, Any]]] = {
    "describer": _describer_summary,
    "pricing": _pricing_summary,
    "backup": _backup_summary,
    "audit": _audit_summary,
}


def _wait(result: Any, timeout: int) -> Any:
    from celery.exceptions import TimeoutError as CeleryTimeout

    try:
        value = result.get(timeout=timeout, propagate=False)
    except CeleryTimeout:
        raise KopterError(
            f"task {result.id} did not finish within {timeout}s: is a worker consuming its "
            "queue? (`kopter status`)"
        ) from None
    if result.failed():
        raise KopterError(f"task {result.id} failed: {type(value).__name__}: {value}")
    return value


# --- monitoring -------------------------------------------------------------------------------


@cli.command()
@click.option("--address", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=5555, show_default=True)
@click.option("--no-auth", is_flag=True, help="No authentication: only on a trusted machine.")
def flower(address: str, port: int, no_auth: bool) -> None:
    """Flower on kopter's control plane: workers, tasks and remote control over Redis, while
    tasks stay on SQS. Authentication is required: KOPTER_FLOWER_BASIC_AUTH, or Flower's OAuth
    (KOPTER_FLOWER_AUTH and KOPTER_FLOWER_AUTH_PROVIDER, with FLOWER_OAUTH2_* for the client)."""
    settings = get_settings()
    env = dict(os.environ)
    argv = [sys.executable, "-m", "celery", "-A", "tasks", "flower"]
    argv += [f"--address={address}", f"--port={port}"]
    if settings.flower_basic_auth:
        # Through Flower's environment, not argv: `ps` would show the passwords.
        env["FLOWER_BASIC_AUTH"] = ",".join(settings.flower_basic_auth)
    if settings.flower_auth:
        if not settings.flower_auth_provider:
            raise KopterError("KOPTER_FLOWER_AUTH needs KOPTER_FLOWER_AUTH_PROVIDER")
        argv += [f"--auth={settings.flower_auth}"]
        argv += [f"--auth_provider={settings.flower_auth_provider}"]
    if no_auth:
        env["FLOWER_UNAUTHENTICATED_API"] = "true"  # Flower 2 refuses its API otherwise
    elif not (settings.flower_basic_auth or settings.flower_auth):
        raise KopterError(
            "Flower needs authentication: set KOPTER_FLOWER_BASIC_AUTH (user:password) or "
            "KOPTER_FLOWER_AUTH with KOPTER_FLOWER_AUTH_PROVIDER (OAuth), or pass --no-auth "
            "on a trusted machine"
        )
    os.execve(sys.executable, argv, env)


# --- local stack ------------------------------------------------------------------------------


@cli.command()
@click.option("--moto-port", envvar="KOPTER_DEV_MOTO_PORT", default=5050, show_default=True)
@click.option("--flower-port", envvar="KOPTER_DEV_FLOWER_PORT", default=5555, show_default=True)
@click.option("--api-port", envvar="KOPTER_DEV_API_PORT", default=8080, show_default=True)
@click.option("--state-dir", envvar="KOPTER_DEV_DIR", default=".kopter-dev", show_default=True)
@click.option("--smoke", is_flag=True, help="Bring the stack up, show it working, stop.")
def dev(moto_port: int, flower_port: int, api_port: int, state_dir: str, smoke: bool) -> None:
    """The embedded local stack (`make run`): moto's server as AWS, Redis, queues and tables,
    a demo tenant, a worker on every queue, beat, Flower, and the read API with the web app
    (its URL signs you in as the demo tenant). Ctrl-C stops everything."""
    from kopter.dev import run_dev_stack

    sys.exit(run_dev_stack(moto_port, flower_port, api_port, Path(state_dir), smoke))


accounts_group.add_command(onboarding.accounts_template)
cli.add_command(onboarding.iam)

# The lifecycle commands register themselves on the groups above.
from kopter.cli import lifecycle  # noqa: E402, F401
