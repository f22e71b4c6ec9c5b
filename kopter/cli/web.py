"""`kopter api` (the read API, and its OpenAPI document for API Gateway) and `kopter web` (the
customers' web app as a folder of static files): registered on the `kopter` group."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import click

from kopter.errors import Refused
from kopter.settings import get_settings

USER_POOL_ARN = re.compile(r"arn:aws[a-z-]*:cognito-idp:[a-z0-9-]+:\d{12}:userpool/[\w-]+_\w+")


@click.group(invoke_without_command=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8080, show_default=True)
@click.pass_context
def api(ctx: click.Context, host: str, port: int) -> None:
    """The read API over HTTP: the audit log, EC2 events, the cost graph, notifications and
    accounts of the caller's tenant, and the web app at /, with JSON access logs on stdout.
    KOPTER_API_AUTH chooses how callers prove their identity (see the README's "Read API")."""
    if ctx.invoked_subcommand:
        return
    from kopter.api.server import serve

    serve(get_settings(), host, port)


@api.command()
@click.option(
    "--api-gateway",
    "for_gateway",
    is_flag=True,
    help="Add API Gateway's integrations (an HTTP proxy to kopter api, the Cognito identity id "
    "and the request id as headers, the gateway secret, CORS preflights answered by a mock "
    "integration), in the OpenAPI 3.0 that API Gateway imports.",
)
@click.option(
    "--backend-url",
    metavar="URL",
    help="--api-gateway: where kopter api listens, as API Gateway reaches it (default: the "
    "stage variable kopterApiUrl).",
)
@click.option(
    "--user-pool-arn",
    metavar="ARN",
    help="--api-gateway: callers prove who they are with a token of this Cognito user pool, "
    "checked by API Gateway's authorizer (default: IAM authorization with an identity pool's "
    "credentials).",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write to this file (default: stdout).",
)
def openapi(
    for_gateway: bool, backend_url: str | None, user_pool_arn: str | None, output: Path | None
) -> None:
    """The read API's OpenAPI document (JSON). With --api-gateway, ready to import into API
    Gateway (a REST API, e.g. the Body of an AWS::ApiGateway::RestApi). The gateway secret is
    read from the stage variable kopterGatewaySecret, so the document holds no secret; the
    preflights allow KOPTER_API_CORS_* (the first origin)."""
    from kopter.api import gateway

    settings = get_settings()
    if (backend_url or user_pool_arn) and not for_gateway:
        raise click.UsageError("--backend-url and --user-pool-arn go with --api-gateway")
    if user_pool_arn and not USER_POOL_ARN.fullmatch(user_pool_arn):
        raise Refused(f"--user-pool-arn {user_pool_arn!r} is not a Cognito user pool's ARN")
    document = (
        gateway.document(settings, backend_url, user_pool_arn)
        if for_gateway
        else gateway.plain(settings)
    )
    text = json.dumps(document, indent=2) + "\n"
    if output:
        output.write_text(text)
        click.echo(f"wrote {output} ({len(document['paths'])} paths)", err=True)
    else:
        sys.stdout.write(text)


@click.group()
def web() -> None:
    """The customers' web app (web/src/), as served by `kopter api` at /."""


@web.command()
@click.argument("target", type=click.Path(file_okay=False, path_type=Path))
def build(target: Path) -> None:
    """Write the app into the folder TARGET (new or empty), with a config.json made from the
    KOPTER_WEB_* settings, for S3 and CloudFront: set KOPTER_WEB_API_URL to the API's URL and
    add the app's origin to the API's KOPTER_API_CORS_ORIGINS."""
    from kopter.api.web import build as build_app

    files = build_app(get_settings(), target)
    click.echo(f"wrote {len(files)} files to {target}")
