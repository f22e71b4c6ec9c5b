"""The `kopter` command group: every command, from the modules of their areas."""

from __future__ import annotations

import click

from kopter.cli import (
    audit,
    channels,
    customers,
    fleet,
    jobs,
    lifecycle,
    onboarding,
    operate,
    rules,
)
from kopter.cli.deploy import deploy
from kopter.cli.health import health
from kopter.cli.ingest import ingest
from kopter.cli.pricing import prices, pricing_group
from kopter.cli.web import api, web


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """kopter: CloudTrail audit log, EC2 fleet, prices and costs for every customer account.

    Settings come from KOPTER_* environment variables (see the README); `kopter settings`
    shows what this process reads.
    """


for command in (
    operate.settings,
    operate.bootstrap,
    operate.status,
    operate.dlq,
    operate.flower,
    operate.dev,
    health,
    customers.tenants,
    customers.accounts_group,
    customers.notifications_list,
    channels.channels_group,
    audit.audit,
    audit.backfill,
    audit.digest,
    rules.rules_group,
    rules.findings,
    ingest,
    fleet.events,
    fleet.graph,
    fleet.snapshots,
    pricing_group,
    prices,
    jobs.run_job,
    api,
    web,
    deploy,
):
    cli.add_command(command)

customers.tenants.add_command(lifecycle.tenants_remove)
for command in (
    lifecycle.accounts_update,
    lifecycle.accounts_remove,
    lifecycle.accounts_rotate,
    onboarding.accounts_template,
):
    customers.accounts_group.add_command(command)
cli.add_command(onboarding.iam)
