"""boto3 clients for kopter's own AWS account.

Every client goes to ``KOPTER_AWS_ENDPOINT_URL`` when it is set (moto's server locally and in the
tests), and retries throttling and transient errors with botocore's standard retry mode, which
backs off with jitter and bounds the attempts.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import boto3
from botocore.config import Config

from kopter.settings import Settings

MAX_ATTEMPTS = 6  # a call and its retries, together
RETRY_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": MAX_ATTEMPTS},
    connect_timeout=5,
    read_timeout=30,
)

_lock = threading.Lock()
_clients: dict[tuple[str, str, str | None], Any] = {}


def _after_fork_in_child() -> None:
    # A client's connection pool must not be shared with a forked pool child, and a lock
    # another thread held at the fork would never be released in the child.
    global _lock
    _lock = threading.Lock()
    _clients.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)


def client(service: str, settings: Settings, region: str | None = None) -> Any:
    """A cached client for ``service`` in kopter's own account (clients are thread-safe)."""
    region = region or settings.region
    key = (service, region, settings.aws_endpoint_url)
    with _lock:
        if key not in _clients:
            # A Session per client: boto3's default session is not safe to share across threads.
            _clients[key] = boto3.session.Session().client(
                service,
                region_name=region,
                endpoint_url=settings.aws_endpoint_url,
                config=RETRY_CONFIG,
            )
        return _clients[key]
