"""`kopter channels add|list|remove`: where a tenant's notifications are delivered."""

from __future__ import annotations

import click

from kopter import accounts
from kopter.channels import store
from kopter.cli.output import emit, json_option, tenant_option
from kopter.errors import KopterError
from kopter.reads import channels as channel_reads
from kopter.settings import get_settings

LEVELS = "info, warning, high or critical (or Sigma's informational, low, medium)"


@click.group("channels")
def channels_group() -> None:
    """Where a tenant's notifications are delivered besides its page: a webhook (signed), a
    Slack incoming webhook, an email address (SES)."""


@channels_group.command("add")
@tenant_option
@click.option("--webhook", metavar="URL", help="POST each notification as signed JSON here.")
@click.option("--slack", metavar="URL", help="A Slack incoming webhook's URL.")
@click.option("--email", metavar="ADDRESS", help="Email each notification here, through SES.")
@click.option(
    "--secret",
    help="A webhook's signing secret (16 to 256 characters); by default kopter makes one.",
)
@click.option(
    "--min-level",
    default="info",
    show_default=True,
    help=f"Deliver notifications of this severity and above: {LEVELS}.",
)
@json_option
def channels_add(
    tenant: str,
    webhook: str | None,
    slack: str | None,
    email: str | None,
    secret: str | None,
    min_level: str,
    as_json: bool,
) -> None:
    """Add a channel. A webhook's signing secret is printed this once, never again."""
    given = [(kind, value) for kind, value in (("webhook", webhook), ("slack", slack),
             ("email", email)) if value is not None]  # fmt: skip
    if len(given) != 1:
        raise KopterError("give one of --webhook URL, --slack URL or --email ADDRESS")
    [(kind, target)] = given
    tenant_id = accounts.resolve_tenant(tenant).tenant_id
    channel, secret = store.add(tenant_id, kind, target, get_settings(), secret, min_level)
    row = channel_reads.view(channel)
    if as_json:
        emit([{**row, "secret": secret}], True, [])
        return
    click.echo(
        f"channel {row['id']} added: {kind} {row['target']}, "
        f"notifications of severity {row['min_level']} and above"
    )
    if secret is not None:
        click.echo("its signing secret (shown this once; X-Kopter-Signature is its HMAC-SHA256):")
        click.echo(secret)


@channels_group.command("list")
@tenant_option
@json_option
def channels_list(tenant: str, as_json: bool) -> None:
    """A tenant's channels, and how their last delivery went (secrets are never shown)."""
    found = channel_reads.query(accounts.resolve_tenant(tenant).tenant_id)
    columns = ["id", "kind", "target", "min_level", "last_delivered_at", "last_failure"]
    emit(map(channel_reads.view, found), as_json, columns)


@channels_group.command("remove")
@tenant_option
@click.argument("channel_id", metavar="ID")
def channels_remove(tenant: str, channel_id: str) -> None:
    """Remove a channel: nothing more is delivered to it, not even a retry under way."""
    store.remove(accounts.resolve_tenant(tenant).tenant_id, channel_id)
    click.echo(f"channel {channel_id} removed")
