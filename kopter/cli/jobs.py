"""`kopter run JOB`: what beat would enqueue, now."""

from __future__ import annotations

import json
from typing import Any

import click

from kopter import accounts, queues
from kopter.cli.output import iso_date, iso_hour, jsonable
from kopter.errors import KopterError
from kopter.settings import SQS_MAX_DELAY_SECONDS, get_settings

# tasks.jobs.JOBS' names (a test holds them equal): the task layer loads for `kopter run` only,
# not for every command.
JOBS = ("aggregator", "audit", "backup", "describer", "pricing")


@click.command("run")
@click.argument("job", type=click.Choice(JOBS))
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
    from tasks.jobs import enqueue, follow

    kwargs: dict[str, Any] = {}
    if tenant:
        if job == "pricing":
            raise KopterError("the price list is not per tenant: drop --tenant")
        kwargs["tenant_id"] = accounts.resolve_tenant(tenant).tenant_id
    if day:
        if job != "audit":
            raise KopterError("--date applies to `kopter run audit` only")
        kwargs["day"] = iso_date(day)
    if job == "describer":
        kwargs["spread_seconds"] = spread or 0
    elif spread is not None:
        raise KopterError("--spread applies to `kopter run describer` only")
    if hour:
        if job != "aggregator":
            raise KopterError("--hour applies to `kopter run aggregator` only")
        kwargs["hour"] = iso_hour(hour)
    queues.verify_queues(get_settings(), queues.WORK_QUEUES)
    task, result = enqueue(job, kwargs)
    click.echo(f"enqueued {task} as {result.id}")
    if not wait:
        return
    summary = follow(job, result, timeout)
    click.echo(json.dumps(summary, default=jsonable, indent=2))
    if summary.get("failed"):
        raise KopterError(f"{job}: {summary['failed']} of its tasks failed (above)")
