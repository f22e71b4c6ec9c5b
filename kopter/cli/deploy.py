"""`kopter deploy template`: kopter's own deployment in an AWS account."""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.group()
def deploy() -> None:
    """kopter's own deployment in an AWS account: one CloudFormation stack (see
    docs/deploying.md)."""


@deploy.command()
@click.option(
    "--format", "form", type=click.Choice(["yaml", "json"]), default="yaml", show_default=True
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write to this file (default: stdout).",
)
@click.option(
    "--workers",
    "specs",
    multiple=True,
    metavar="NAME=QUEUE,QUEUE",
    help="A worker group: an ECS service on these queues, scaled on their backlog (again for "
    "each group; every work queue in one group, at most four a group). Default: "
    "realtime=ingest,describer,notifications and jobs=pricing,aggregator,audit,backup.",
)
def template(form: str, output: Path | None, specs: tuple[str, ...]) -> None:
    """The CloudFormation template of kopter's own deployment: queues and tables as `kopter
    bootstrap` makes them, Redis, the workers, beat, the read API and Flower on ECS Fargate,
    the web app on S3 and CloudFront, a Cognito user pool, API Gateway as the other front, and
    alarms. Settings are parameters, their defaults kopter's; nothing secret is in it."""
    from kopter.api import gateway
    from kopter.deploy import edge, groups
    from kopter.deploy import template as build
    from kopter.iam.customer import render

    document = gateway.document(edge.gateway_settings(), edge.BACKEND_URL, edge.USER_POOL_ARN)
    stack = build(groups.parse(list(specs)), document)
    text = render(stack, form)
    if output is None:
        sys.stdout.write(text)
        return
    output.write_text(text)
    click.echo(
        f"wrote {output} ({len(stack['Resources'])} resources, "
        f"{len(stack['Parameters'])} parameters)",
        err=True,
    )
