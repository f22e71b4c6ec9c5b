"""`kopter tenants|accounts|notifications`: customers, their AWS accounts, what they are told."""

from __future__ import annotations

import sys
from dataclasses import asdict
from typing import Any

import click

from kopter import accounts, queues
from kopter.cli.output import emit, json_option, tenant_option
from kopter.errors import KopterError
from kopter.reads import accounts as account_reads
from kopter.settings import get_settings


def _csv(_: Any, __: Any, value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    return tuple(v.strip() for v in value.split(",") if v.strip())


@click.group()
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


@click.group("accounts")
def accounts_group() -> None:
    """Customers' AWS accounts."""


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
        row = account_reads.operator_view(account, get_settings())
        emit([{**row, "quick_create_link": link}], True, [])
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
    listed = account_reads.query(accounts.resolve_tenant(tenant).tenant_id, everything)
    columns = ["account_id", "regions", "healthy", "last_success_at", "role_arn"]
    rows = (account_reads.operator_view(a, get_settings()) for a in listed)
    emit(rows, as_json, columns + (["removed_at"] if everything else []))


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
        from tasks.jobs import wait

        queues.verify_queues(get_settings(), ["describer"])
        rows = wait(check_account.delay(account.tenant_id, account.account_id), timeout)
    else:
        settings = get_settings()
        rows = [
            asdict(c) for c in accounts.check_account(account, shared_sessions(settings), settings)
        ]
    emit(rows, as_json, ["name", "ok", "detail"])
    if not all(row["ok"] for row in rows):
        sys.exit(1)


@click.command("notifications")
@tenant_option
@click.option("--unread", is_flag=True, help="Only those not read yet.")
@click.option("--limit", type=click.IntRange(1), default=100, show_default=True)
@json_option
def notifications_list(tenant: str, unread: bool, limit: int, as_json: bool) -> None:
    """What a tenant's UI shows, newest first."""
    from kopter.reads.notifications import NotificationsQuery, query, view

    q = NotificationsQuery(accounts.resolve_tenant(tenant).tenant_id, unread, limit)
    emit(map(view, query(q)), as_json, ["created_at", "severity", "kind", "title", "read"])
