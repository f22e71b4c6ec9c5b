"""kopter's configuration: every setting, read from the environment in this one place.

Each setting is a ``KOPTER_*`` variable; the README lists them with their defaults. Values are read
once per process (``get_settings()`` is cached) and validated, so a typo fails at start-up with the
variable's name instead of somewhere deep inside a task.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from functools import cache
from urllib.parse import urlsplit

from kopter.errors import ConfigError

AWS_PRICING_URL = "https://pricing.us-east-1.amazonaws.com"

# SQS refuses a visibility timeout above 12 hours and a DelaySeconds above 15 minutes.
SQS_MAX_VISIBILITY_TIMEOUT = 12 * 3600
SQS_MAX_DELAY_SECONDS = 900
SNS_TOPIC_ARN = re.compile(r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[\w-]{1,256}$")


@dataclass(frozen=True)
class Settings:
    aws_endpoint_url: str | None
    region: str
    prefix: str
    redis_url: str
    pricing_url: str
    visibility_timeout: int
    task_time_limit: int
    max_receive_count: int
    worker_max_tasks_per_child: int
    worker_max_memory_mb: int
    role_session_name: str
    audit_retention_days: int
    ingest_max_mb: int
    notifications_topic_arn: str | None
    describe_spread_seconds: int
    pricing_regions: tuple[str, ...]
    pricing_timeout: int

    @property
    def ingest_max_bytes(self) -> int:
        return self.ingest_max_mb * 1024 * 1024

    @property
    def max_countdown(self) -> int:
        """The longest countdown a task may be given: SQS's own DelaySeconds maximum. Longer
        waits belong to beat. (A worker renews the visibility of a delayed message it holds,
        see ``tasks.visibility``, so the wait may outlast the visibility timeout.)"""
        return SQS_MAX_DELAY_SECONDS

    def for_display(self) -> dict[str, str]:
        shown = {}
        for f in fields(self):
            value = getattr(self, f.name)
            text = ",".join(value) if isinstance(value, tuple) else str(value or "")
            shown[f"KOPTER_{f.name.upper()}"] = text
        return shown


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number") from None
    if not low <= value <= high:
        raise ConfigError(f"{name}={value} is outside {low}..{high}")
    return value


def _url(env: Mapping[str, str], name: str, default: str | None, schemes: set[str]) -> str | None:
    raw = env.get(name) or default
    if raw is None:
        return None
    parts = urlsplit(raw)
    if parts.scheme not in schemes or not parts.netloc:
        wanted = " or ".join(sorted(schemes))
        raise ConfigError(f"{name}={raw!r} is not a {wanted} URL")
    return raw.rstrip("/")


def _topic(env: Mapping[str, str], name: str) -> str | None:
    raw = env.get(name) or None
    if raw is not None and not re.match(
        r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[\w-]{1,256}$", raw
    ):
        raise ConfigError(f"{name}={raw!r} is not an SNS topic ARN")
    return raw


def _regions(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    raw = env.get(name) or ""
    regions = tuple(r.strip() for r in raw.split(",") if r.strip())
    for region in regions:
        if not re.fullmatch(r"[a-z]{2}(-[a-z]+)+-\d+", region):
            raise ConfigError(f"{name}: {region!r} is not a region name like us-east-1")
    return regions


def load(env: Mapping[str, str]) -> Settings:
    prefix = env.get("KOPTER_PREFIX", "kopter-dev-")
    # Queue names allow [A-Za-z0-9_-] and 80 characters; the longest kopter adds is
    # "cloudtrail-notifications-dlq" (28).
    if not prefix or len(prefix) > 40 or not all(c.isalnum() or c in "-_" for c in prefix):
        raise ConfigError(f"KOPTER_PREFIX={prefix!r}: use 1 to 40 of A-Z a-z 0-9 - _")
    return Settings(
        aws_endpoint_url=_url(env, "KOPTER_AWS_ENDPOINT_URL", None, {"http", "https"}),
        region=env.get("KOPTER_REGION") or "us-east-1",
        prefix=prefix,
        redis_url=_url(env, "KOPTER_REDIS_URL", "redis://127.0.0.1:6379/0", {"redis", "rediss"})
        or "",
        pricing_url=_url(env, "KOPTER_PRICING_URL", AWS_PRICING_URL, {"http", "https"}) or "",
        visibility_timeout=_int(
            env, "KOPTER_VISIBILITY_TIMEOUT", 1800, 2, SQS_MAX_VISIBILITY_TIMEOUT
        ),
        task_time_limit=_int(env, "KOPTER_TASK_TIME_LIMIT", 900, 1, SQS_MAX_VISIBILITY_TIMEOUT),
        max_receive_count=_int(env, "KOPTER_MAX_RECEIVE_COUNT", 5, 1, 1000),
        worker_max_tasks_per_child=_int(env, "KOPTER_WORKER_MAX_TASKS_PER_CHILD", 1000, 1, 10**7),
        worker_max_memory_mb=_int(env, "KOPTER_WORKER_MAX_MEMORY_MB", 1024, 64, 1024 * 1024),
        role_session_name=env.get("KOPTER_ROLE_SESSION_NAME") or "kopter",
        audit_retention_days=_int(env, "KOPTER_AUDIT_RETENTION_DAYS", 365, 1, 36500),
        ingest_max_mb=_int(env, "KOPTER_INGEST_MAX_MB", 1024, 1, 64 * 1024),
        notifications_topic_arn=_topic(env, "KOPTER_NOTIFICATIONS_TOPIC_ARN"),
        describe_spread_seconds=_int(
            env, "KOPTER_DESCRIBE_SPREAD_SECONDS", 300, 0, SQS_MAX_DELAY_SECONDS
        ),
        pricing_regions=_regions(env, "KOPTER_PRICING_REGIONS"),
        pricing_timeout=_int(env, "KOPTER_PRICING_TIMEOUT", 60, 1, 3600),
    )


@cache
def get_settings() -> Settings:
    return load(os.environ)
