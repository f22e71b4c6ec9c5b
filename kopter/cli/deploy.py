"""`kopter deploy template|cost|web`: kopter's own deployment in an AWS account."""

from __future__ import annotations

import inspect
import json
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from kopter.deploy.groups import WorkerGroup
from kopter.errors import Refused
from kopter.settings import get_settings

# The stack's outputs `kopter deploy web` makes the app's config.json from.
WEB_OUTPUTS = ("ApiUrl", "OidcIssuer", "UserPoolClientId", "WebUrl", "WebBucketName")


workers_option = click.option(
    "--workers",
    "specs",
    multiple=True,
    metavar="NAME=QUEUE,QUEUE",
    help="A worker group: an ECS service on these queues, scaled on their backlog (again for "
    "each group; every work queue in one group, at most four a group). Default: "
    "realtime=ingest,describer,notifications, jobs=pricing,aggregator,audit,backup and "
    "alerts=deliveries.",
)


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
@workers_option
def template(form: str, output: Path | None, specs: tuple[str, ...]) -> None:
    """The CloudFormation template of kopter's own deployment: queues and tables as `kopter
    bootstrap` makes them, Redis, the workers, beat, the read API and Flower on ECS Fargate,
    the web app on S3 and CloudFront, a Cognito user pool, API Gateway as the other front, and
    alarms. Settings are parameters, their defaults kopter's; nothing secret is in it."""
    from kopter.iam.customer import render

    _, stack = _stack(specs)
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


def _stack(specs: tuple[str, ...]) -> tuple[tuple[WorkerGroup, ...], dict[str, Any]]:
    """The worker groups and the template `kopter deploy template` writes for them."""
    from kopter.api import gateway
    from kopter.deploy import edge, groups
    from kopter.deploy import template as build

    document = gateway.document(edge.gateway_settings(), edge.BACKEND_URL, edge.USER_POOL_ARN)
    chosen = groups.parse(list(specs))
    return chosen, build(chosen, document)


@deploy.command()
@click.option("--accounts", metavar="N", help="Connected customer accounts to cost (1 or more).")
@click.option(
    "--assume",
    "assumptions",
    multiple=True,
    metavar="NAME=VALUE",
    help="Change an assumption about the customers' estates (again for each; listed above).",
)
@click.option("--json", "as_json", is_flag=True, help="The bill as one JSON document.")
@workers_option
def cost(
    accounts: str | None, assumptions: tuple[str, ...], as_json: bool, specs: tuple[str, ...]
) -> None:
    """kopter's own monthly AWS bill for N connected accounts, line by line: the stack's fleet on
    Fargate (its workers scaled on their queues), SQS, DynamoDB, ElastiCache, the load balancer,
    S3 and CloudFront, CloudWatch, Secrets Manager and Cognito; then the same tasks on Lambda.
    What each unit of work asks of AWS is counted (kopter/deploy/usage.py), prices are AWS's
    us-east-1 list prices, dated and cited (kopter/deploy/prices.py); see docs/deploying.md."""
    from kopter.deploy import bill
    from kopter.deploy.workload import Workload

    count = _accounts(accounts)
    workload = Workload.with_assumptions(list(assumptions))
    groups, stack = _stack(specs)
    estimate = bill.estimate(stack, groups, count, workload)
    if as_json:
        click.echo(json.dumps(bill.document(estimate), indent=2))
    else:
        click.echo(bill.text(estimate), nl=False)


def _assumptions_help() -> str:
    """The assumptions, each with its default and where that comes from (kept as lines)."""
    from kopter.deploy.workload import Workload

    lines = [
        f"{name}={default:g}: {source}" for name, (default, source) in Workload.sources().items()
    ]
    return "\b\nAssumptions (--assume NAME=VALUE), with their defaults:\n" + "\n".join(lines)


cost.help = inspect.cleandoc(cost.help or "") + "\n\n" + _assumptions_help()


def _accounts(raw: str | None) -> int:
    """--accounts as a number (whether it is one to cost is the bill's to say)."""
    if raw is None:
        raise Refused("give --accounts N, the connected accounts to cost")
    try:
        return int(raw)
    except ValueError:
        raise Refused(f"--accounts {raw!r}: give a whole number of accounts, 1 or more") from None


@deploy.command()
@click.option("--stack", required=True, help="The deployed stack's name.")
def web(stack: str) -> None:
    """Build the web app (`kopter web build`) with a config.json made from the stack's outputs
    (the API's URL, the user pool's issuer and client, the app's own URL), upload it to the
    stack's bucket, and have CloudFront drop what it cached."""
    from kopter.api.web import build
    from kopter.deploy.stack import outputs, publish

    settings = get_settings()
    found = outputs(settings, stack)
    missing = [name for name in WEB_OUTPUTS if name not in found]
    if missing or "WebDistributionId" not in found:
        raise Refused(f"stack {stack} is not kopter's: no output {', '.join(missing)}")
    web_settings = replace(
        settings,
        web_api_url=found["ApiUrl"].rstrip("/"),
        web_oidc_issuer=found["OidcIssuer"],
        web_oidc_client_id=found["UserPoolClientId"],
        web_oidc_redirect_uri=found["WebUrl"],
    )
    with tempfile.TemporaryDirectory() as folder:
        build(web_settings, Path(folder))
        count = publish(
            settings,
            Path(folder),
            found["WebBucketName"],
            found["WebDistributionId"],
            lambda line: click.echo(line, err=True),
        )
    click.echo(f"published {count} files: {found['WebUrl']}")
