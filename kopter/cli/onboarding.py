"""Commands of onboarding and IAM: `kopter accounts template` and `remove`, and `kopter iam`,
over the policies kopter generates (`kopter.iam`). Registered on the `kopter` group in
`kopter.cli.root`."""

from __future__ import annotations

import json

import click

from kopter import accounts, rawqueue
from kopter.errors import KopterError, Refused
from kopter.iam import arns, browser, customer, own
from kopter.settings import Settings, get_settings
from kopter.tables import AwsAccount


def deployment(settings: Settings) -> customer.Deployment:
    return customer.Deployment(
        arns.kopter_account(settings), settings.region, arns.raw_queue_arn(settings)
    )


def account_defaults(
    tenant: str, account_id: str, with_trail: bool, kms_key_arn: str | None
) -> customer.Defaults:
    account = accounts.get_account(accounts.resolve_tenant(tenant).tenant_id, account_id)
    if with_trail and not account.cloudtrail_bucket:
        raise Refused(
            f"account {account_id} has no CloudTrail bucket registered: --with-trail creates "
            "the registered bucket (`kopter accounts add … --cloudtrail-bucket B`)"
        )
    return customer.Defaults(
        tenant_id=account.tenant_id,
        external_id=account.external_id,
        cloudtrail_bucket=account.cloudtrail_bucket or "",
        cloudtrail_prefix=account.cloudtrail_prefix or "",
        kms_key_arn=kms_key_arn or "",
        with_trail=with_trail,
    )


@click.command("template")
@click.option("--tenant", help="Tenant id or name (with --account-id: that account's defaults).")
@click.option("--account-id", help="The connected account whose values become the defaults.")
@click.option(
    "--with-trail",
    is_flag=True,
    help="Also create a trail, the registered bucket and its notifications to kopter.",
)
@click.option("--kms-key-arn", help="The KMS key that encrypts the trail's log files, if any.")
@click.option(
    "--format",
    "form",
    type=click.Choice(["yaml", "json"]),
    default="yaml",
    show_default=True,
)
def accounts_template(
    tenant: str | None,
    account_id: str | None,
    with_trail: bool,
    kms_key_arn: str | None,
    form: str,
) -> None:
    """The CloudFormation template of the role kopter assumes in a customer's account.

    Without --tenant and --account-id: the template to publish once (at
    KOPTER_ONBOARDING_TEMPLATE_URL) for the quick-create links `kopter accounts add` prints."""
    if (tenant is None) != (account_id is None):
        raise Refused("give both --tenant and --account-id, or neither (the generic template)")
    defaults = customer.Defaults()
    if tenant is not None and account_id is not None:
        defaults = account_defaults(tenant, account_id, with_trail, kms_key_arn)
    elif with_trail or kms_key_arn:
        raise Refused("--with-trail and --kms-key-arn need --tenant and --account-id")
    document = customer.template(deployment(get_settings()), defaults)
    click.echo(customer.render(document, form), nl=False)


@click.command("iam")
@click.argument("role", type=click.Choice([*own.ROLES, "browser"]))
@click.option(
    "--queues",
    "consumed",
    help="worker only: the queues it consumes, comma-separated as for -Q (default: all).",
)
@click.option("--bucket", help="browser only: the bucket with a prefix per identity.")
def iam(role: str, consumed: str | None, bucket: str | None) -> None:
    """The least-privilege IAM policy of one kind of kopter process, as JSON.

    ROLE: worker (for the queues it consumes), beat, api (the read API), flower, operator (this
    command line), or browser (a Cognito identity pool's authenticated role: each customer's
    own items only). Resources are named by KOPTER_AWS_ACCOUNT_ID, KOPTER_REGION and
    KOPTER_PREFIX; see docs/onboarding.md, "IAM"."""
    if consumed is not None and role != "worker":
        raise Refused("--queues is for the worker's policy")
    if bucket is not None and role != "browser":
        raise Refused("--bucket is for the browser's policy")
    names = [q.strip() for q in (consumed or "").split(",") if q.strip()]
    try:
        if role == "browser":
            document = browser.policy(get_settings(), bucket)
        else:
            document = own.policy(get_settings(), role, names)
    except ValueError as e:
        raise Refused(str(e)) from None
    click.echo(json.dumps(document, indent=2))


def default_role_arn(account_id: str) -> str:
    return f"arn:aws:iam::{account_id}:role/{customer.ROLE_NAME}"


def quick_create_link(account: AwsAccount, with_trail: bool) -> str | None:
    return accounts.onboarding_link(account, get_settings(), with_trail)


def onboarding_hint(account: AwsAccount, link: str | None) -> str:
    check = f"then run `kopter accounts check --tenant {account.tenant_id} --account-id " + (
        f"{account.account_id}`."
    )
    if link:
        return f"In account {account.account_id}, create the stack of this link, {check}\n{link}"
    return (
        "Create its role with the template of `kopter accounts template --tenant "
        f"{account.tenant_id} --account-id {account.account_id}` (or publish the generic "
        f"template at KOPTER_ONBOARDING_TEMPLATE_URL for a one-click link), {check}"
    )


def keep_raw_queue_policy(settings: Settings, added: AwsAccount | None = None) -> None:
    """After a registration (``added``) or a removal: the raw queue admits exactly the
    registered accounts (a failure to write it is reported, not fatal: `kopter bootstrap`
    repairs it)."""
    try:
        if added is None:
            rawqueue.ensure_policy(settings)
        else:
            rawqueue.admit(settings, added.account_id, added.cloudtrail_bucket)
    except KopterError as e:
        click.echo(f"kopter: warning: the raw queue's policy is not current: {e}", err=True)
