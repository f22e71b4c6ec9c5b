"""The stack's parameters that are kopter settings: each passed to every process as its
``KOPTER_*`` variable, its default kopter's own default (``kopter/settings.py``), its bounds the
ones the settings enforce, so CloudFormation refuses what a process would refuse at start-up."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from kopter.deploy.cfn import Template, equals, not_, ref
from kopter.settings import SQS_MAX_DELAY_SECONDS, SQS_MAX_VISIBILITY_TIMEOUT, load

REGION = r"[a-z]{2}(-[a-z]+)+-\d+"


@dataclass(frozen=True)
class SettingParameter:
    name: str  # the template's parameter
    field: str  # the attribute of kopter.settings.Settings
    description: str
    low: int | None = None  # a number's bounds (MinValue, MaxValue)
    high: int | None = None
    pattern: str | None = None  # a string's AllowedPattern (the whole value)

    @property
    def variable(self) -> str:
        return f"KOPTER_{self.field.upper()}"

    def default(self) -> str | int | float:
        """kopter's default, as the template states it (a number as a number)."""
        value = getattr(load({}), self.field)
        if isinstance(value, tuple):
            return ",".join(value)
        if isinstance(value, Decimal):
            return int(value) if value == value.to_integral_value() else float(value)
        return "" if value is None else value

    def spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "Type": "String" if self.pattern else "Number",
            "Default": self.default(),
            "Description": f"{self.variable}: {self.description}",
        }
        if self.pattern:
            spec["AllowedPattern"] = f"^{self.pattern}$"
            spec["ConstraintDescription"] = f"{self.variable} would refuse this value"
        if self.low is not None:
            spec["MinValue"] = self.low
        if self.high is not None:
            spec["MaxValue"] = self.high
        return spec


SETTINGS = (
    SettingParameter(
        "Prefix",
        "prefix",
        "prefix of every queue and table name (and of beat's keys in Redis)",
        pattern=r"[A-Za-z0-9_-]{1,40}",
    ),
    SettingParameter(
        "VisibilityTimeout",
        "visibility_timeout",
        "seconds SQS hides a received message",
        2,
        SQS_MAX_VISIBILITY_TIMEOUT,
    ),
    SettingParameter(
        "TaskTimeLimit",
        "task_time_limit",
        "hard time limit of any task, in seconds",
        1,
        SQS_MAX_VISIBILITY_TIMEOUT,
    ),
    SettingParameter(
        "MaxReceiveCount", "max_receive_count", "receives before SQS parks a message", 1, 1000
    ),
    SettingParameter(
        "WorkerMaxTasksPerChild",
        "worker_max_tasks_per_child",
        "a pool process is replaced after this many tasks",
        1,
        10**7,
    ),
    SettingParameter(
        "WorkerMaxMemoryMb",
        "worker_max_memory_mb",
        "... or once it uses this much memory",
        64,
        1024 * 1024,
    ),
    SettingParameter(
        "BeatLockTimeout",
        "beat_lock_timeout",
        "seconds beat's lock outlives its holder's last renewal",
        5,
        3600,
    ),
    SettingParameter(
        "AuditRetentionDays",
        "audit_retention_days",
        "audit-log items expire this long after ingest",
        1,
        36500,
    ),
    SettingParameter(
        "IngestMaxMb", "ingest_max_mb", "a larger log object is refused", 1, 64 * 1024
    ),
    SettingParameter(
        "DescribeSpreadSeconds",
        "describe_spread_seconds",
        "beat's hourly describer run spreads its tasks over this many seconds",
        0,
        SQS_MAX_DELAY_SECONDS,
    ),
    SettingParameter(
        "PricingRegions",
        "pricing_regions",
        "regions whose prices are kept besides those of registered accounts",
        pattern=rf"({REGION}(,{REGION})*)?",
    ),
    SettingParameter(
        "PricingTimeout",
        "pricing_timeout",
        "seconds a price-list download may wait for the next bytes",
        1,
        3600,
    ),
    SettingParameter(
        "CostJumpFactor",
        "cost_jump_factor",
        "an hour costing more than this times the average raises a notification",
        1,
    ),
    SettingParameter(
        "CostJumpMinUsd",
        "cost_jump_min_usd",
        "... when it is also at least this many USD more",
        0,
    ),
    SettingParameter(
        "CostJumpDays", "cost_jump_days", "how many days before make that average", 1, 90
    ),
    SettingParameter(
        "BackupTag",
        "backup_tag",
        "the instance tag that asks for backups",
        pattern=r"(?![Aa][Ww][Ss]:).{1,128}",
    ),
    SettingParameter(
        "BackupRetentionDays",
        "backup_retention_days",
        "how long a snapshot of an instance tagged true is kept",
        1,
        3650,
    ),
    SettingParameter(
        "NotificationsTopicArn",
        "notifications_topic_arn",
        "an SNS topic every new frontend notification is also published to (empty: none)",
        pattern=r"(arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[\w-]{1,256})?",
    ),
    SettingParameter(
        "OnboardingTemplateUrl",
        "onboarding_template_url",
        "where `kopter accounts template` is published, for quick-create links (empty: none)",
        pattern=r"(https://[^/\s?#]+(/\S*)?)?",
    ),
    SettingParameter(
        "ApiTenantCacheSeconds",
        "api_tenant_cache_seconds",
        "how long an API process remembers that an identity is a tenant",
        0,
        3600,
    ),
    SettingParameter(
        "HealthGrace",
        "health_grace",
        "seconds a worker may go without SQS answering before its probe fails",
        10,
        3600,
    ),
)


def add(t: Template) -> None:
    for setting in SETTINGS:
        t.parameter(setting.name, **setting.spec())
    t.condition("HasNotificationsTopic", not_(equals(ref("NotificationsTopicArn"), "")))


def environment() -> list[dict[str, Any]]:
    """What every process reads from these parameters."""
    return [{"Name": s.variable, "Value": ref(s.name)} for s in SETTINGS]
