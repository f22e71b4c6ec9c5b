"""`kopter settings|bootstrap|status|dlq|flower|dev`: running kopter itself."""

from __future__ import annotations

import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from kopter import queues
from kopter.cli.output import emit, json_option
from kopter.errors import KopterError
from kopter.settings import get_settings


@click.command()
def settings() -> None:
    """Show the settings this process reads from the environment."""
    for name, value in get_settings().for_display().items():
        click.echo(f"{name}={value}")


@click.command()
@json_option
def bootstrap(as_json: bool) -> None:
    """Create every SQS queue (with its DLQ) and DynamoDB table; safe to run again."""
    from kopter.bootstrap import bootstrap as run_bootstrap

    changes = run_bootstrap(get_settings())
    emit((asdict(c) for c in changes), as_json, ["kind", "name", "action", "detail"])
    if not as_json:
        changed = [c for c in changes if c.action != "unchanged"]
        summary = f"{len(changed)} of {len(changes)} resources created or updated"
        click.echo(summary if changed else "nothing to change: every queue and table is in place")


@click.command()
@json_option
def status(as_json: bool) -> None:
    """Each queue's depth: visible, in flight, delayed, in its DLQ, and the oldest message's
    age (CloudWatch's ApproximateAgeOfOldestMessage, where AWS publishes it); each beat entry's
    last and next run; each worker that answers over the control plane, with its queues."""
    from kombu.exceptions import OperationalError
    from redis.exceptions import ConnectionError as RedisConnectionError

    rows = [asdict(d) for d in queues.depths(get_settings())]
    if not as_json:
        for row in rows:
            age = row["oldest_age_seconds"]
            row["oldest_age"] = "-" if age is None else f"{age:.0f}s"
    emit(
        rows,
        as_json,
        ["queue", "visible", "in_flight", "delayed", "dlq_visible", "oldest_age", "name"],
    )
    # Beat and the workers are known through Redis: without it, the queues above still show.
    try:
        from tasks.status import beat_entries, workers

        entries, alive = beat_entries(), workers()
    except (RedisConnectionError, OperationalError) as e:
        raise KopterError(f"beat entries and workers unknown: cannot reach Redis: {e}") from None
    if not as_json:
        click.echo()
    emit(entries, as_json, ["beat_entry", "last_run", "next_run"])
    if not as_json:
        click.echo()
    emit(alive, as_json, ["worker", "alive", "queues"])


@click.group()
def dlq() -> None:
    """Dead-letter queues: what was parked and why, and sending it back."""


@dlq.command("show")
@click.argument("queue")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True)
@json_option
def dlq_show(queue: str, limit: int, as_json: bool) -> None:
    """The messages parked in QUEUE's DLQ (a short name: `audit`), and why: a task's last
    failure from the result backend, or the CloudTrail bridge's reason. They stay parked."""
    from kopter import dlq as dead_letters

    rows = [asdict(m) for m in dead_letters.show(get_settings(), queue, limit)]
    if not as_json:
        for row in rows:
            row["what"] = row["task"] or row["body"][:60]
    emit(rows, as_json, ["message_id", "sent_at", "receive_count", "what", "args", "reason"])


@dlq.command("redrive")
@click.argument("queue")
@click.option("--limit", type=click.IntRange(min=1), help="Move at most this many (default all).")
def dlq_redrive(queue: str, limit: int | None) -> None:
    """Send QUEUE's parked messages back to QUEUE, once the cause is fixed."""
    from kopter import dlq as dead_letters

    moved = dead_letters.redrive(get_settings(), queue, limit)
    click.echo(f"{moved} messages moved from {queue}'s DLQ back to {queue}")


@click.command()
@click.option("--address", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=5555, show_default=True)
@click.option("--no-auth", is_flag=True, help="No authentication: only on a trusted machine.")
def flower(address: str, port: int, no_auth: bool) -> None:
    """Flower on kopter's control plane: workers, tasks and remote control over Redis, while
    tasks stay on SQS. Authentication is required: KOPTER_FLOWER_BASIC_AUTH, or Flower's OAuth
    (KOPTER_FLOWER_AUTH and KOPTER_FLOWER_AUTH_PROVIDER, with FLOWER_OAUTH2_* for the client)."""
    settings = get_settings()
    env = dict(os.environ)
    argv = [sys.executable, "-m", "celery", "-A", "tasks", "flower"]
    argv += [f"--address={address}", f"--port={port}"]
    if settings.flower_basic_auth:
        # Through Flower's environment, not argv: `ps` would show the passwords.
        env["FLOWER_BASIC_AUTH"] = ",".join(settings.flower_basic_auth)
    if settings.flower_auth:
        if not settings.flower_auth_provider:
            raise KopterError("KOPTER_FLOWER_AUTH needs KOPTER_FLOWER_AUTH_PROVIDER")
        argv += [f"--auth={settings.flower_auth}"]
        argv += [f"--auth_provider={settings.flower_auth_provider}"]
    if no_auth:
        env["FLOWER_UNAUTHENTICATED_API"] = "true"  # Flower 2 refuses its API otherwise
    elif not (settings.flower_basic_auth or settings.flower_auth):
        raise KopterError(
            "Flower needs authentication: set KOPTER_FLOWER_BASIC_AUTH (user:password) or "
            "KOPTER_FLOWER_AUTH with KOPTER_FLOWER_AUTH_PROVIDER (OAuth), or pass --no-auth "
            "on a trusted machine"
        )
    os.execve(sys.executable, argv, env)


def _dev_option(flag: str, envvar: str, default: int | str, meaning: str) -> Any:
    """An option of `kopter dev` that its environment variable sets too (the settings page
    lists them beside the settings)."""
    return click.option(
        flag, envvar=envvar, default=default, show_default=True, show_envvar=True, help=meaning
    )


@click.command()
@_dev_option("--moto-port", "KOPTER_DEV_MOTO_PORT", 5050, "moto's port: the stack's AWS endpoint.")
@_dev_option("--flower-port", "KOPTER_DEV_FLOWER_PORT", 5555, "Flower's port.")
@_dev_option("--api-port", "KOPTER_DEV_API_PORT", 8080, "The read API's and the web app's port.")
@_dev_option(
    "--state-dir", "KOPTER_DEV_DIR", ".kopter-dev", "Where the stack keeps its logs and Redis data."
)
@click.option("--smoke", is_flag=True, help="Bring the stack up, show it working, stop.")
def dev(moto_port: int, flower_port: int, api_port: int, state_dir: str, smoke: bool) -> None:
    """The embedded local stack (`make run`): moto's server as AWS, Redis, queues and tables,
    a demo tenant, a worker on every queue, beat, Flower, and the read API with the web app
    (its URL signs you in as the demo tenant). Ctrl-C stops everything."""
    from kopter.dev import run_dev_stack

    sys.exit(run_dev_stack(moto_port, flower_port, api_port, Path(state_dir), smoke))
