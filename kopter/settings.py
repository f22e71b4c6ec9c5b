"""kopter's configuration: every setting, read from the environment in this one place.

Each setting is a ``KOPTER_*`` variable; the README lists them with their defaults. Values are read
once per process (``get_settings()`` is cached) and validated, so a typo fails at start-up with the
variable's name instead of somewhere deep inside a task.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from decimal import Decimal, InvalidOperation
from functools import cache
from urllib.parse import urlsplit

from kopter.errors import ConfigError

AWS_PRICING_URL = "https://pricing.us-east-1.amazonaws.com"

# SQS refuses a visibility timeout above 12 hours and a DelaySeconds above 15 minutes.
SQS_MAX_VISIBILITY_TIMEOUT = 12 * 3600
SQS_MAX_DELAY_SECONDS = 900
# An address SES takes: no display name, no spaces, within RFC 5321's 254 characters.
EMAIL_ADDRESS = r"(?=.{3,254}$)[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+"
SNS_TOPIC_ARN = re.compile(r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[\w-]{1,256}$")


@dataclass(frozen=True)
class Settings:
    aws_endpoint_url: str | None
    region: str
    prefix: str
    # kopter's own AWS account: what customers' roles trust, and where its queues live.
    aws_account_id: str | None
    # Where the operator published `kopter accounts template` (for quick-create links).
    onboarding_template_url: str | None
    redis_url: str
    beat_lock_timeout: int
    pricing_url: str
    visibility_timeout: int
    task_time_limit: int
    max_receive_count: int
    worker_max_tasks_per_child: int
    worker_max_memory_mb: int
    # What the orchestrator allows a worker between SIGTERM and SIGKILL (ECS's stopTimeout,
    # systemd's TimeoutStopSec).
    worker_stop_timeout: int
    role_session_name: str
    audit_retention_days: int
    ingest_max_mb: int
    # How long a worker keeps a tenant's detection rules before reading them again.
    rules_cache_seconds: int
    notifications_topic_arn: str | None
    describe_spread_seconds: int
    pricing_regions: tuple[str, ...]
    pricing_timeout: int
    backup_tag: str
    backup_retention_days: int
    cost_jump_factor: Decimal
    cost_jump_min_usd: Decimal
    cost_jump_days: int
    # The read API (`kopter api`); kopter.api checks at start-up what its mode needs.
    api_auth: str | None
    api_gateway_secret: str | None = field(repr=False)
    api_jwt_key: str | None = field(repr=False)
    api_jwt_algorithm: str
    api_jwt_audience: str | None
    api_jwt_issuer: str | None
    api_jwt_jwks_url: str | None
    api_jwt_jwks_cache_seconds: int
    api_jwt_jwks_cooldown_seconds: int
    api_cors_origins: tuple[str, ...]
    api_cors_methods: tuple[str, ...]
    api_cors_headers: tuple[str, ...]
    api_cursor_key: str | None = field(repr=False)
    api_tenant_cache_seconds: int
    # The web app (served by `kopter api`, or built by `kopter web build`): where it finds the
    # API, and the OIDC provider it signs users in with (e.g. a Cognito user pool's hosted UI).
    web_api_url: str | None
    web_oidc_issuer: str | None
    web_oidc_client_id: str | None
    web_oidc_scopes: str
    web_oidc_redirect_uri: str | None
    # Flower (`kopter flower`): basic auth, or Flower's OAuth (emails allowed, provider).
    flower_basic_auth: tuple[str, ...] = field(repr=False)
    flower_auth: str | None
    flower_auth_provider: str | None
    # Supervisors' probes (`kopter health`): where heartbeats are written, how stale is dead.
    health_dir: str
    health_grace: int
    # Where notifications are delivered (`kopter channels`): how an endpoint is called, how
    # long it is retried, how many deliveries one tenant may have in flight at once.
    channels_allow_private: bool
    channels_email_from: str | None
    channels_timeout: int
    channels_max_attempts: int
    channels_retry_seconds: int
    channels_tenant_concurrency: int

    @property
    def ingest_max_bytes(self) -> int:
        return self.ingest_max_mb * 1024 * 1024

    @property
    def worker_give_up_after(self) -> int:
        """Seconds after SIGTERM at which a stopping worker gives back the tasks still running:
        the stop timeout less a margin (an eighth of it, 10 to 30 s) for giving their messages
        back and exiting before SIGKILL (3.5 s measured on a loaded machine)."""
        return self.worker_stop_timeout - min(30, max(10, self.worker_stop_timeout // 8))

    @property
    def channels_attempt_seconds(self) -> int:
        """The longest one delivery attempt may take: connecting (to two addresses at most) and
        reading, each within the timeout, and 5 s for resolving the name."""
        return 3 * self.channels_timeout + 5

    def for_display(self) -> dict[str, str]:
        shown = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool):
                text = str(value).lower()  # as the variable is written
            elif isinstance(value, tuple):
                text = ",".join(value)
            else:
                text = str(value or "")
            if not f.repr and value:
                text = "(set, not shown)"  # a secret
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


def _decimal(env: Mapping[str, str], name: str, default: str, low: Decimal) -> Decimal:
    raw = env.get(name) or default
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise ConfigError(f"{name}={raw!r} is not a number") from None
    if not value.is_finite() or value < low:
        raise ConfigError(f"{name}={raw} must be at least {low}")
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


def _jwks_url(env: Mapping[str, str], name: str) -> str | None:
    """An https URL; plain http only to a loopback address (moto, the tests), where no one
    between kopter and the issuer could swap the keys that every token is checked against."""
    raw = env.get(name) or None
    if raw is None:
        return None
    parts = urlsplit(raw)
    try:
        loopback = ipaddress.ip_address(parts.hostname or "").is_loopback
    except ValueError:
        loopback = False
    if not parts.netloc or not (parts.scheme == "https" or (parts.scheme == "http" and loopback)):
        raise ConfigError(f"{name}={raw!r} is not an https URL (http only to 127.0.0.1)")
    return raw


def _topic(env: Mapping[str, str], name: str) -> str | None:
    raw = env.get(name) or None
    if raw is not None and not re.match(
        r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[\w-]{1,256}$", raw
    ):
        raise ConfigError(f"{name}={raw!r} is not an SNS topic ARN")
    return raw


def _account_id(env: Mapping[str, str], name: str) -> str | None:
    raw = env.get(name) or None
    if raw is not None and not re.fullmatch(r"\d{12}", raw):
        raise ConfigError(f"{name}={raw!r} is not a 12-digit AWS account id")
    return raw


def _regions(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    raw = env.get(name) or ""
    regions = tuple(r.strip() for r in raw.split(",") if r.strip())
    for region in regions:
        if not re.fullmatch(r"[a-z]{2}(-[a-z]+)+-\d+", region):
            raise ConfigError(f"{name}: {region!r} is not a region name like us-east-1")
    return regions


def _tag_key(env: Mapping[str, str], name: str, default: str) -> str:
    raw = env.get(name) or default
    # EC2's rules for a tag key: at most 128 characters, and the aws: prefix is AWS's own.
    if len(raw) > 128 or raw.lower().startswith("aws:"):
        raise ConfigError(f"{name}={raw!r}: use a tag key of 1 to 128 characters, not aws:…")
    return raw


def _choice(env: Mapping[str, str], name: str, default: str, allowed: set[str]) -> str:
    raw = env.get(name) or default
    if raw and raw not in allowed:
        raise ConfigError(f"{name}={raw!r} is not one of {', '.join(sorted(allowed))}")
    return raw


def _list(
    env: Mapping[str, str], name: str, default: str, pattern: str, what: str
) -> tuple[str, ...]:
    raw = env.get(name, default)
    values = tuple(v.strip() for v in raw.split(",") if v.strip())
    for value in values:
        if not re.fullmatch(pattern, value):
            raise ConfigError(f"{name}: {value!r} is not {what}")
    return values


def _token(env: Mapping[str, str], name: str, pattern: str) -> str | None:
    raw = env.get(name) or None
    if raw is not None and not re.fullmatch(pattern, raw):
        raise ConfigError(f"{name}={raw!r} is not of the form {pattern}")
    return raw


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = (env.get(name) or "false").lower()
    if raw not in ("true", "false", "1", "0", "yes", "no"):
        raise ConfigError(f"{name}={env.get(name)!r} is not true or false")
    return raw in ("true", "1", "yes")


def _email(env: Mapping[str, str], name: str) -> str | None:
    raw = env.get(name) or None
    if raw is not None and not re.fullmatch(EMAIL_ADDRESS, raw):
        raise ConfigError(f"{name}={raw!r} is not an email address like alerts@example.com")
    return raw


def _credentials(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """``user:password`` pairs, comma-separated, or one login as a Secrets Manager secret's JSON
    (``{"username": …, "password": …}``, as ECS passes a whole secret); an error never shows a
    password."""
    raw = env.get(name, "")
    if raw.lstrip().startswith("{"):
        try:
            login = json.loads(raw)
            raw = f"{login['username']}:{login['password']}"
        except (ValueError, KeyError, TypeError):
            raise ConfigError(
                f'{name}: a JSON login needs "username" and "password" strings'
            ) from None
    pairs = tuple(v.strip() for v in raw.split(",") if v.strip())
    for i, pair in enumerate(pairs, 1):
        if not re.fullmatch(r"[^:\s]+:\S+", pair):
            raise ConfigError(f"{name}: entry {i} is not user:password")
    return pairs


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
        aws_account_id=_account_id(env, "KOPTER_AWS_ACCOUNT_ID"),
        onboarding_template_url=_url(env, "KOPTER_ONBOARDING_TEMPLATE_URL", None, {"https"}),
        redis_url=_url(env, "KOPTER_REDIS_URL", "redis://127.0.0.1:6379/0", {"redis", "rediss"})
        or "",
        beat_lock_timeout=_int(env, "KOPTER_BEAT_LOCK_TIMEOUT", 150, 5, 3600),
        pricing_url=_url(env, "KOPTER_PRICING_URL", AWS_PRICING_URL, {"http", "https"}) or "",
        visibility_timeout=_int(
            env, "KOPTER_VISIBILITY_TIMEOUT", 1800, 2, SQS_MAX_VISIBILITY_TIMEOUT
        ),
        task_time_limit=_int(env, "KOPTER_TASK_TIME_LIMIT", 900, 1, SQS_MAX_VISIBILITY_TIMEOUT),
        max_receive_count=_int(env, "KOPTER_MAX_RECEIVE_COUNT", 5, 1, 1000),
        worker_max_tasks_per_child=_int(env, "KOPTER_WORKER_MAX_TASKS_PER_CHILD", 1000, 1, 10**7),
        worker_max_memory_mb=_int(env, "KOPTER_WORKER_MAX_MEMORY_MB", 1024, 64, 1024 * 1024),
        # Fargate's most by default; at least 15 s, so 5 s are left to the tasks after the margin.
        worker_stop_timeout=_int(
            env, "KOPTER_WORKER_STOP_TIMEOUT", 120, 15, SQS_MAX_VISIBILITY_TIMEOUT
        ),
        role_session_name=env.get("KOPTER_ROLE_SESSION_NAME") or "kopter",
        audit_retention_days=_int(env, "KOPTER_AUDIT_RETENTION_DAYS", 365, 1, 36500),
        ingest_max_mb=_int(env, "KOPTER_INGEST_MAX_MB", 1024, 1, 64 * 1024),
        rules_cache_seconds=_int(env, "KOPTER_RULES_CACHE_SECONDS", 30, 0, 3600),
        notifications_topic_arn=_topic(env, "KOPTER_NOTIFICATIONS_TOPIC_ARN"),
        describe_spread_seconds=_int(
            env, "KOPTER_DESCRIBE_SPREAD_SECONDS", 300, 0, SQS_MAX_DELAY_SECONDS
        ),
        pricing_regions=_regions(env, "KOPTER_PRICING_REGIONS"),
        pricing_timeout=_int(env, "KOPTER_PRICING_TIMEOUT", 60, 1, 3600),
        backup_tag=_tag_key(env, "KOPTER_BACKUP_TAG", "kopter:backup"),
        backup_retention_days=_int(env, "KOPTER_BACKUP_RETENTION_DAYS", 7, 1, 3650),
        cost_jump_factor=_decimal(env, "KOPTER_COST_JUMP_FACTOR", "2", Decimal(1)),
        cost_jump_min_usd=_decimal(env, "KOPTER_COST_JUMP_MIN_USD", "1", Decimal(0)),
        cost_jump_days=_int(env, "KOPTER_COST_JUMP_DAYS", 7, 1, 90),
        api_auth=_choice(env, "KOPTER_API_AUTH", "", {"gateway", "jwt"}) or None,
        api_gateway_secret=env.get("KOPTER_API_GATEWAY_SECRET") or None,
        api_jwt_key=env.get("KOPTER_API_JWT_KEY") or None,
        api_jwt_algorithm=_choice(env, "KOPTER_API_JWT_ALGORITHM", "RS256", {"HS256", "RS256"}),
        api_jwt_audience=env.get("KOPTER_API_JWT_AUDIENCE") or None,
        api_jwt_issuer=env.get("KOPTER_API_JWT_ISSUER") or None,
        api_jwt_jwks_url=_jwks_url(env, "KOPTER_API_JWT_JWKS_URL"),
        api_jwt_jwks_cache_seconds=_int(env, "KOPTER_API_JWT_JWKS_CACHE_SECONDS", 300, 1, 86400),
        api_jwt_jwks_cooldown_seconds=_int(
            env, "KOPTER_API_JWT_JWKS_COOLDOWN_SECONDS", 30, 1, 3600
        ),
        api_cors_origins=_list(
            env,
            "KOPTER_API_CORS_ORIGINS",
            "",
            r"\*|https?://[A-Za-z0-9.-]+(:\d{1,5})?",
            "an origin like https://app.example.com (or *)",
        ),
        api_cors_methods=_list(
            env,
            "KOPTER_API_CORS_METHODS",
            "GET,POST,DELETE",
            r"[A-Z]{3,7}",
            "an HTTP method like GET",
        ),
        api_cors_headers=_list(
            env,
            "KOPTER_API_CORS_HEADERS",
            "Authorization,Content-Type",
            r"[A-Za-z0-9-]{1,64}",
            "a header name",
        ),
        api_cursor_key=env.get("KOPTER_API_CURSOR_KEY") or None,
        api_tenant_cache_seconds=_int(env, "KOPTER_API_TENANT_CACHE_SECONDS", 60, 0, 3600),
        web_api_url=_url(env, "KOPTER_WEB_API_URL", None, {"http", "https"}),
        web_oidc_issuer=_url(env, "KOPTER_WEB_OIDC_ISSUER", None, {"https", "http"}),
        web_oidc_client_id=_token(env, "KOPTER_WEB_OIDC_CLIENT_ID", r"[\w.-]{1,128}"),
        web_oidc_scopes=_token(env, "KOPTER_WEB_OIDC_SCOPES", r"[\w:/.-]+( [\w:/.-]+)*")
        or "openid",
        web_oidc_redirect_uri=_url(env, "KOPTER_WEB_OIDC_REDIRECT_URI", None, {"http", "https"}),
        flower_basic_auth=_credentials(env, "KOPTER_FLOWER_BASIC_AUTH"),
        flower_auth=env.get("KOPTER_FLOWER_AUTH") or None,
        flower_auth_provider=env.get("KOPTER_FLOWER_AUTH_PROVIDER") or None,
        health_dir=env.get("KOPTER_HEALTH_DIR") or "/tmp/kopter-health",
        # Above the worker's 5 s long poll, so an idle worker is never called dead.
        health_grace=_int(env, "KOPTER_HEALTH_GRACE", 60, 10, 3600),
        channels_allow_private=_flag(env, "KOPTER_CHANNELS_ALLOW_PRIVATE"),
        channels_email_from=_email(env, "KOPTER_CHANNELS_EMAIL_FROM"),
        channels_timeout=_int(env, "KOPTER_CHANNELS_TIMEOUT", 10, 1, 60),
        channels_max_attempts=_int(env, "KOPTER_CHANNELS_MAX_ATTEMPTS", 8, 1, 20),
        # Doubled at each attempt up to SQS's longest delay: 8 attempts span about half an hour.
        channels_retry_seconds=_int(
            env, "KOPTER_CHANNELS_RETRY_SECONDS", 15, 1, SQS_MAX_DELAY_SECONDS
        ),
        channels_tenant_concurrency=_int(env, "KOPTER_CHANNELS_TENANT_CONCURRENCY", 2, 1, 100),
    )


@cache
def get_settings() -> Settings:
    return load(os.environ)
