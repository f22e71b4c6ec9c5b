"""`kopter events|graph|snapshots`: what changed in the EC2 fleets, their cost, their backups."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import click

from kopter import accounts, times
from kopter.cli.output import emit, json_option, tenant_option

if TYPE_CHECKING:
    from kopter.reads.costs import By


@click.command()
@tenant_option
@click.option("--since", help="From this ISO date or time (UTC).")
@click.option("--account", help="Only this account id.")
@click.option("--limit", type=click.IntRange(1), default=100, show_default=True)
@json_option
def events(tenant: str, since: str | None, account: str | None, limit: int, as_json: bool) -> None:
    """What changed in a tenant's EC2 fleets (launched, started, stopped, terminated, resized,
    retagged), newest first."""
    from kopter.reads.ec2_events import Ec2EventsQuery, query, view

    q = Ec2EventsQuery(
        accounts.resolve_tenant(tenant).tenant_id,
        since=times.from_iso(since) if since else None,
        account=account,
        limit=limit,
    )
    columns = ["occurred_at", "account_id", "region", "instance_id", "kind", "detail"]
    emit(map(view, query(q)), as_json, columns)


@click.command()
@tenant_option
@click.option("--since", help="From this ISO date or time, UTC (default: 24 hours ago).")
@click.option("--until", help="Up to this ISO date or time, UTC (default: now).")
@click.option(
    "--by", type=click.Choice(["account", "region", "instance-type"]), help="Split each hour."
)
@json_option
def graph(tenant: str, since: str | None, until: str | None, by: By | None, as_json: bool) -> None:
    """A tenant's EC2 cost per hour (USD, on-demand prices), oldest first."""
    from kopter.reads.costs import CostQuery, query, view

    tenant_id = accounts.resolve_tenant(tenant).tenant_id
    now = datetime.now(UTC)
    start = times.parse(times.from_iso(since)) if since else now - timedelta(hours=24)
    end = times.parse(times.from_iso(until)) if until else now
    columns = ["hour", *([by.replace("-", "_")] if by else []), "cost_usd"]
    emit(map(view, query(CostQuery(tenant_id, start, end, by))), as_json, columns)


@click.command()
@tenant_option
@click.option("--account", help="Only this account id.")
@json_option
def snapshots(tenant: str, account: str | None, as_json: bool) -> None:
    """The snapshots the backup job took of a tenant's volumes (and failed to, or deleted when
    they expired), newest window first."""
    from kopter.reads.snapshots import SnapshotQuery, query, view

    found = query(SnapshotQuery(accounts.resolve_tenant(tenant).tenant_id, account))
    rows = (view(s) for s in found)
    columns = ["window", "account_id", "region", "instance_id", "volume_id", "snapshot_id"]
    emit(rows, as_json, [*columns, "state", "expires_on", "failure"])
