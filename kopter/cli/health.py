"""`kopter health`: a supervisor's liveness and readiness probes (systemd, Kubernetes).

Each answers with one line and its exit status: 0 healthy, 1 not. The deploy/ units run them.
"""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Callable

import click

from kopter.health import Verdict, api_verdict, beat_verdict, worker_verdict
from kopter.settings import get_settings

wait_option = click.option(
    "--wait",
    type=click.FloatRange(min=0),
    default=0,
    help="Ask again until healthy for up to this many seconds (for a unit's ExecStartPost).",
)


@click.group()
def health() -> None:
    """Is a worker, beat or the read API healthy? One line, exit status 0 or 1.

    Workers and beat write heartbeats in KOPTER_HEALTH_DIR; the probe reads them there, so it
    runs on the same host (or in the same pod) as the process it asks about.
    """


def _answer(verdict: Callable[[], Verdict], wait: float) -> None:
    deadline = time.monotonic() + wait
    result = verdict()
    while not result.healthy and time.monotonic() < deadline:
        time.sleep(1)
        result = verdict()
    click.echo(result.line if result.healthy else f"unhealthy: {result.line}")
    sys.exit(0 if result.healthy else 1)


@health.command()
@click.option(
    "--node",
    default=f"celery@{socket.gethostname()}",
    show_default=True,
    help="The worker's node name (its -n).",
)
@wait_option
def worker(node: str, wait: float) -> None:
    """Live and ready: its event loop turns and its consumer received from SQS within
    KOPTER_HEALTH_GRACE seconds (or it runs all it may hold)."""
    _answer(lambda: worker_verdict(get_settings(), node), wait)


@health.command()
@click.option("--ready", is_flag=True, help="Also ask that Redis answered beat's last tick.")
@wait_option
def beat(ready: bool, wait: float) -> None:
    """Live: beat ticked within its last two ticks (holding the lock or standing by)."""
    _answer(lambda: beat_verdict(get_settings(), ready), wait)


@health.command()
@click.option("--url", default="http://127.0.0.1:8080", show_default=True)
@click.option("--timeout", type=click.FloatRange(min=0.1), default=5, show_default=True)
@wait_option
def api(url: str, timeout: float, wait: float) -> None:
    """Live and ready: the read API answers GET /healthz with 200 within --timeout."""
    _answer(lambda: api_verdict(url, timeout), wait)
