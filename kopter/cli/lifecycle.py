"""`kopter accounts update|remove|rotate-external-id` and `kopter tenants remove`: an account's
and a tenant's life after they are added (``kopter.lifecycle``)."""

from __future__ import annotations

import sys
from typing import Any

import click

from kopter import accounts, lifecycle
from kopter.cli.customers import _csv
from kopter.cli.onboarding import keep_raw_queue_policy, quick_create_link
from kopter.cli.output import emit, json_option, tenant_option
from kopter.errors import NotFound
from kopter.reads.accounts import operator_view
from kopter.settings import get_settings

account_option = click.option("--account-id", required=True, help="The 12-digit AWS account id.")


@click.command("update")
@tenant_option
@account_option
@click.option("--role-arn", help="A new role for kopter to assume in the account.")
@click.option("--regions", callback=_csv, help="The regions to describe and back up, all of them.")
@click.option("--cloudtrail-bucket", help="The bucket CloudTrail now writes the logs to.")
@click.option("--cloudtrail-prefix", help="The trail's key prefix in it ('' for none).")
@click.option("--no-cloudtrail", is_flag=True, help="Stop ingesting: forget bucket and prefix.")
@json_option
def accounts_update(
    tenant: str,
    account_id: str,
    role_arn: str | None,
    regions: tuple[str, ...] | None,
    cloudtrail_bucket: str | None,
    cloudtrail_prefix: str | None,
    no_cloudtrail: bool,
    as_json: bool,
) -> None:
    """Change a connected account. The next describer, backup and ingest use the new values
    (no restart); a region removed is no longer described, backed up or costed."""
    if no_cloudtrail and (cloudtrail_bucket or cloudtrail_prefix is not None):
        raise click.UsageError("--no-cloudtrail goes alone, without a bucket or prefix")
    change = lifecycle.AccountChange(
        role_arn, regions, cloudtrail_bucket, cloudtrail_prefix, no_cloudtrail
    )
    if change == lifecycle.AccountChange():
        raise click.UsageError("nothing to change: see `kopter accounts update --help`")
    account = lifecycle.update_account(_tenant_id(tenant), account_id, change)
    if cloudtrail_bucket or no_cloudtrail:
        keep_raw_queue_policy(get_settings())  # the bucket it admits changed
    emit(
        [operator_view(account, get_settings())],
        as_json,
        ["account_id", "regions", "role_arn", "cloudtrail"],
    )


@click.command("remove")
@tenant_option
@account_option
@click.option("--purge", is_flag=True, help="Also delete its data now (else kept to retention).")
@click.option("--yes", is_flag=True, help="Do not ask before purging.")
@json_option
def accounts_remove(tenant: str, account_id: str, purge: bool, yes: bool, as_json: bool) -> None:
    """Disconnect an account: nothing runs for it from now on, its log files are refused, and its
    id is free for another tenant. Its data stays until its retention unless --purge."""
    tenant_id = _tenant_id(tenant)
    account = accounts.get_account(tenant_id, account_id)
    if account.removed_at is None:
        lifecycle.remove_account(tenant_id, account_id)
        keep_raw_queue_policy(get_settings())
        _say(f"account {account_id} disconnected; delete the `kopter` stack in it as well")
    else:
        _say(f"account {account_id} was disconnected on {account.removed_at:%Y-%m-%d %H:%M}Z")
    if purge:
        _confirm(yes, f"delete everything kopter holds of account {account_id}")
        summary = lifecycle.purge_account(tenant_id, account_id, get_settings(), _progress)
        _summary(summary, as_json)


@click.command("rotate-external-id")
@tenant_option
@account_option
@json_option
def accounts_rotate(tenant: str, account_id: str, as_json: bool) -> None:
    """Issue a new ExternalId. The old one keeps working until the role trusts the new one
    (`kopter accounts check` says which works), then kopter forgets it."""
    account = lifecycle.rotate_external_id(_tenant_id(tenant), account_id)
    if as_json:
        emit([operator_view(account, get_settings())], True, [])
        return
    click.echo(f"account {account_id}: its new ExternalId is")
    click.echo(account.external_id)
    click.echo(
        "Put it in the role's trust policy (StringEquals sts:ExternalId) in place of the old one: "
        "update the stack's ExternalId parameter, or its template from `kopter accounts template "
        f"--tenant {account.tenant_id} --account-id {account_id}`, which carries the new one. "
        "Then run `kopter accounts check`: once the new one works the old one is forgotten."
    )
    link = quick_create_link(account, with_trail=False)
    if link:
        click.echo(f"A new stack with the new ExternalId: {link}")


@click.command("remove")
@click.argument("tenant")
@click.option("--purge", is_flag=True, help="Also delete every item the tenant owns, now.")
@click.option("--yes", is_flag=True, help="Do not ask before purging.")
@json_option
def tenants_remove(tenant: str, purge: bool, yes: bool, as_json: bool) -> None:
    """A customer leaves: every account disconnected and their identity refused by the read API.
    With --purge, every item they own in every table and their keys in Redis are deleted, with
    a summary per table; run it again after a crash to finish. Snapshots in their own accounts
    are theirs: listed, never deleted."""
    try:
        tenant_id = _tenant_id(tenant)
        removed = lifecycle.remove_tenant(tenant_id)
    except NotFound:
        if not purge:
            raise
        tenant_id, removed = tenant, []  # its row is gone: a purge that stopped half-way
    if removed:
        keep_raw_queue_policy(get_settings())
    _say(f"tenant {tenant_id} removed ({len(removed)} account(s) disconnected now)")
    if purge:
        _confirm(yes, f"delete every item of tenant {tenant_id}")
        _summary(lifecycle.purge_tenant(tenant_id, get_settings(), _progress), as_json)


def _tenant_id(ref: str) -> str:
    return accounts.resolve_tenant(ref).tenant_id


def _confirm(yes: bool, what: str) -> None:
    if not yes and not click.confirm(f"{what}? This cannot be undone", err=True):
        raise click.Abort()


def _say(line: str) -> None:
    click.echo(line, err=True)


def _progress(table: str, deleted: int) -> None:
    if sys.stderr.isatty():
        click.echo(f"\rpurging {table}: {deleted:,} deleted", err=True, nl=False)
    else:
        click.echo(f"purging {table}: {deleted:,} deleted", err=True)


def _summary(summary: lifecycle.PurgeSummary, as_json: bool) -> None:
    if sys.stderr.isatty():
        click.echo(err=True)
    rows: list[dict[str, Any]] = [
        {"table": table, "deleted": count} for table, count in sorted(summary.deleted.items())
    ]
    rows.append({"table": "redis", "deleted": summary.redis_keys})
    emit(rows, as_json, ["table", "deleted"])
    if summary.snapshots_kept:
        _say(
            f"{len(summary.snapshots_kept)} snapshot(s) kopter took are still in the customer's "
            "account(s), theirs to keep or delete:"
        )
        for s in summary.snapshots_kept:
            _say(f"  {s['account_id']}  {s['region']}  {s['snapshot_id']}")
