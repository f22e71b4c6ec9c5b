"""`kopter audit|backfill|digest`: the audit log (CloudTrail) and its daily digest."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

import click

from kopter import accounts, queues, times
from kopter.cli.output import cell, emit, iso_date, json_option, tenant_option
from kopter.errors import KopterError
from kopter.settings import get_settings


@click.command()
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
    from kopter.reads.audit import AuditQuery, query, view

    q = AuditQuery(
        tenant_id=accounts.resolve_tenant(tenant).tenant_id,
        since=times.from_iso(since) if since else None,
        until=times.from_iso(until) if until else None,
        account=account,
        event_name=event_name,
        event_source=event_source,
        user=user,
        errors_only=errors,
        limit=limit,
    )
    columns = ["event_time", "account_id", "event_name", "principal_arn", "source_ip", "error_code"]
    emit(map(view, query(q)), as_json, columns)


@click.command()
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


@click.command()
@tenant_option
@click.option("--date", "day", help="The day (ISO date, UTC; default: today).")
@json_option
def digest(tenant: str, day: str | None, as_json: bool) -> None:
    """A tenant's daily audit digest: the findings with their severity (those of the rules that
    judged each record at ingest, and the audit's own that count over the day), denied and
    failed calls by principal, calls by principal and by service. `kopter run audit` makes it."""
    from kopter.reads.digest import query, view

    owner = accounts.resolve_tenant(tenant)
    when = date.fromisoformat(iso_date(day)) if day else datetime.now(UTC).date()
    stored = query(owner.tenant_id, when)
    if stored is None:
        raise KopterError(
            f"no audit digest of tenant {owner.name} for {when}: "
            f"`kopter run audit --tenant {tenant} --date {when}` makes it"
        )
    d = view(stored)
    if as_json:
        emit([d], True, [])
        return
    click.echo(
        f"audit digest of {owner.name} for {d['day']} (computed {cell(d['computed_at'])}): "
        f"{d['records']} records, {d['denied_calls']} denied, {d['failed_calls']} failed, "
        f"{d['findings_total']} findings"
    )
    findings = [
        {
            **f,
            "rule": f["rule"]
            + (f" (+{len(f['rules']) - 1})" if len(f.get("rules", ())) > 1 else ""),
            "calls": _counts(f["calls"]),
            "technique": (f.get("technique") or {}).get("id"),
        }
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
