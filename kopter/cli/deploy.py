"""`kopter deploy template|web`: kopter's own deployment in an AWS account."""

from __future__ import annotations

import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import click

from kopter.errors import Refused
from kopter.settings import get_settings

# The stack's outputs `kopter deploy web` makes the app's config.json from.
WEB_OUTPUTS = ("ApiUrl", "OidcIssuer", "UserPoolClientId", "WebUrl", "WebBucketName")


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
