"""kopter's DynamoDB tables, as PynamoDB models.

Confinement: every tenant-owned table (and every index on it) has the tenant id as its hash key
or as the first part of it (``<tenant>#…``), so an IAM policy with a ``dynamodb:LeadingKeys``
condition (``<tenant>`` or ``<tenant>#*``) can limit a customer's credentials to their own items.

Idempotency: SQS delivers at least once, so each item's key is derived from what it describes
(an eventID, an instance id, an hour), never from the time it was written: a redelivered message
writes the same key again instead of a second item.

Each model declares only its table's base name: ``bind(settings)``, called once at start-up by
each process that reads them (a worker, a command, the API, a test), names the tables
``KOPTER_PREFIX`` + that name in kopter's region, at ``KOPTER_AWS_ENDPOINT_URL``. A model used
before that fails with ``TablesNotBound`` rather than reach a default deployment's table.
"""

from __future__ import annotations

import os
from datetime import datetime
from decimal import Decimal
from functools import cache
from typing import Any

from pynamodb.attributes import (
    Attribute,
    BooleanAttribute,
    JSONAttribute,
    ListAttribute,
    MapAttribute,
    NumberAttribute,
    TTLAttribute,
    UnicodeAttribute,
    UnicodeSetAttribute,
    UTCDateTimeAttribute,
)
from pynamodb.connection import Connection
from pynamodb.constants import NUMBER
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model

from kopter.errors import KopterError
from kopter.settings import Settings


class DecimalAttribute(Attribute[Decimal]):
    """A DynamoDB number kept as Decimal: PynamoDB's NumberAttribute goes through float."""

    attr_type = NUMBER

    def serialize(self, value: Decimal) -> str:
        return str(value)

    def deserialize(self, value: str) -> Decimal:
        return Decimal(value)


class TablesNotBound(KopterError):
    """A model was used before ``bind``: the process has not said which deployment it serves."""


class _UnboundMeta(type):
    # Only reached while ``table_name`` is unset: ``bind`` sets it on the class. Not an
    # AttributeError, which PynamoDB's ``hasattr`` checks would swallow into a vaguer message.
    def __getattr__(cls, name: str) -> Any:
        if name == "table_name":
            raise TablesNotBound(
                f"table {cls.base_name!r} used before kopter.tables.bind(settings) was called"
            )
        raise AttributeError(name)


def _meta(table: str) -> Any:
    class Meta(metaclass=_UnboundMeta):
        base_name = table
        billing_mode = "PAY_PER_REQUEST"
        max_retry_attempts = 8  # throttling: PynamoDB backs off between attempts

    return Meta


def _index_meta(name: str, projection: Any) -> Any:
    class Meta:
        index_name = name
        billing_mode = "PAY_PER_REQUEST"

    Meta.projection = projection  # type: ignore[attr-defined]
    return Meta


def _key(*parts: str) -> str:
    """A composite key: its parts joined by ``#``, the tenant first where it has one. Every
    composite key is made by a model's method below (``Ec2Event.account_key``), none elsewhere."""
    return "#".join(parts)


class TenantAccountKeyed:
    """A model keyed or indexed by ``<tenant>#<account>``."""

    @staticmethod
    def account_key(tenant_id: str, account_id: str) -> str:
        return _key(tenant_id, account_id)


# --- customers --------------------------------------------------------------------------------


class Tenant(Model):
    """A customer. ``tenant_id`` is the customer's identity id (e.g. their Cognito identity)."""

    Meta = _meta("Tenants")
    tenant_id = UnicodeAttribute(hash_key=True)
    name = UnicodeAttribute()
    created_at = UTCDateTimeAttribute()
    removed_at = UTCDateTimeAttribute(null=True)  # left the service: its identity is refused


class AwsAccount(Model):
    """An AWS account a tenant connected: the role kopter assumes there, and its health."""

    Meta = _meta("AwsAccounts")
    tenant_id = UnicodeAttribute(hash_key=True)
    account_id = UnicodeAttribute(range_key=True)
    role_arn = UnicodeAttribute()
    external_id = UnicodeAttribute()
    # After `kopter accounts rotate-external-id`: the old id, tried only until the new one works.
    previous_external_id = UnicodeAttribute(null=True)
    regions = ListAttribute[str](of=UnicodeAttribute)  # type: ignore[arg-type]
    cloudtrail_bucket = UnicodeAttribute(null=True)
    cloudtrail_prefix = UnicodeAttribute(null=True)
    created_at = UTCDateTimeAttribute()
    healthy = BooleanAttribute(default=True)
    health_reason = UnicodeAttribute(null=True)
    health_checked_at = UTCDateTimeAttribute(null=True)
    last_success_at = UTCDateTimeAttribute(null=True)
    consecutive_failures = NumberAttribute(default=0)
    unhealthy_since = UTCDateTimeAttribute(null=True)  # first failure since the last success
    # Disconnected: nothing runs for it and its id is free; its data stays until retention.
    removed_at = UTCDateTimeAttribute(null=True)


# --- CloudTrail audit log ---------------------------------------------------------------------


class AuditEventsByAccount(GlobalSecondaryIndex["AuditLogEvent"]):
    """`kopter audit --account A` and the per-account backfill checks: newest first."""

    Meta = _index_meta("by-account", AllProjection())
    tenant_account = UnicodeAttribute(hash_key=True)
    event_key = UnicodeAttribute(range_key=True)


class AuditEventsByName(GlobalSecondaryIndex["AuditLogEvent"]):
    """`kopter audit --event-name N` and the daily audit's look-ups of specific calls."""

    Meta = _index_meta("by-event-name", AllProjection())
    tenant_event_name = UnicodeAttribute(hash_key=True)
    event_key = UnicodeAttribute(range_key=True)


class AuditEventsByPrincipal(GlobalSecondaryIndex["AuditLogEvent"]):
    """`kopter audit --user ARN`: everything one principal did."""

    Meta = _index_meta("by-principal", AllProjection())
    tenant_principal = UnicodeAttribute(hash_key=True)
    event_key = UnicodeAttribute(range_key=True)


class AuditLogEvent(TenantAccountKeyed, Model):
    """One normalized CloudTrail record. Keyed by ``eventTime#eventID``: a record seen in two
    files, or a file delivered twice, writes the same item."""

    Meta = _meta("AuditLogEvents")
    tenant_id = UnicodeAttribute(hash_key=True)
    event_key = UnicodeAttribute(range_key=True)  # "<eventTime ISO>#<eventID>"
    tenant_account = UnicodeAttribute()  # "<tenant>#<account>"
    tenant_event_name = UnicodeAttribute()  # "<tenant>#<eventName>"
    tenant_principal = UnicodeAttribute(null=True)  # "<tenant>#<principal ARN>"
    event_time = UnicodeAttribute()  # CloudTrail's own "2025-03-06T02:25:06Z": sortable
    event_id = UnicodeAttribute()
    account_id = UnicodeAttribute()
    region = UnicodeAttribute()
    event_source = UnicodeAttribute()
    event_name = UnicodeAttribute()
    event_type = UnicodeAttribute(null=True)  # AwsApiCall, AwsServiceEvent, AwsConsoleSignIn…
    principal_type = UnicodeAttribute(null=True)
    principal_arn = UnicodeAttribute(null=True)
    principal_account = UnicodeAttribute(null=True)
    session_issuer = UnicodeAttribute(null=True)
    invoked_by = UnicodeAttribute(null=True)
    source_ip = UnicodeAttribute(null=True)
    user_agent = UnicodeAttribute(null=True)
    read_only = BooleanAttribute(null=True)
    error_code = UnicodeAttribute(null=True)
    error_message = UnicodeAttribute(null=True)
    request = UnicodeAttribute(null=True)  # compact JSON, size-bounded
    response = UnicodeAttribute(null=True)
    truncated = BooleanAttribute(default=False)
    mfa_used = UnicodeAttribute(null=True)  # ConsoleLogin only: additionalEventData.MFAUsed
    source_object = UnicodeAttribute(null=True)  # s3://bucket/key it came from
    expires_at = TTLAttribute(null=True)  # audit retention

    by_account = AuditEventsByAccount()
    by_event_name = AuditEventsByName()
    by_principal = AuditEventsByPrincipal()

    @staticmethod
    def sort_key(event_time: str, event_id: str) -> str:
        return _key(event_time, event_id)

    @staticmethod
    def event_name_key(tenant_id: str, event_name: str) -> str:
        return _key(tenant_id, event_name)

    @staticmethod
    def principal_key(tenant_id: str, principal_arn: str) -> str:
        return _key(tenant_id, principal_arn)


class AuditDigest(Model):
    """The daily audit of one tenant's UTC day (``kopter/cloudtrail/digest.py``). Keyed by the
    day: running a day again overwrites its digest. Lists are cut to their largest entries so
    a busy day still fits in one item."""

    Meta = _meta("AuditDigests")
    tenant_id = UnicodeAttribute(hash_key=True)
    day = UnicodeAttribute(range_key=True)  # "YYYY-MM-DD", UTC
    records = NumberAttribute()
    principals = NumberAttribute()  # distinct principals; by_principal keeps the busiest
    by_principal = JSONAttribute()  # {principal: calls}, busiest first
    by_source = JSONAttribute()  # {eventSource: calls}, busiest first
    denied_calls = NumberAttribute()
    denied = JSONAttribute()  # [{"principal", "count", "calls": {eventName: n}}], most first
    failed_calls = NumberAttribute()  # failed for a reason other than access denied
    failed = JSONAttribute()  # [{"principal", "count", "errors": {errorCode: n}}]
    findings_total = NumberAttribute()
    findings = JSONAttribute()  # most severe first (see the digest module's RULES)
    computed_at = UTCDateTimeAttribute()
    expires_at = TTLAttribute(null=True)  # the audit log's retention


# --- EC2 fleet --------------------------------------------------------------------------------


class Ec2Instance(TenantAccountKeyed, Model):
    """The last described state of one instance. The describer reads one (account, region) at
    a time: hash ``<tenant>#<account>``, range prefix ``<region>#``."""

    Meta = _meta("Ec2Instances")
    tenant_account = UnicodeAttribute(hash_key=True)
    region_instance = UnicodeAttribute(range_key=True)  # "<region>#<instance id>"
    tenant_id = UnicodeAttribute()
    account_id = UnicodeAttribute()
    region = UnicodeAttribute()
    instance_id = UnicodeAttribute()
    state = UnicodeAttribute()
    instance_type = UnicodeAttribute()
    platform = UnicodeAttribute(null=True)  # PlatformDetails, e.g. "Linux/UNIX"
    tenancy = UnicodeAttribute(null=True)
    lifecycle = UnicodeAttribute(default="on-demand")
    availability_zone = UnicodeAttribute(null=True)
    launch_time = UTCDateTimeAttribute(null=True)
    tags = JSONAttribute(default=dict)
    volume_ids = ListAttribute[str](of=UnicodeAttribute, default=list)  # type: ignore[arg-type]
    first_seen_at = UTCDateTimeAttribute()
    last_seen_at = UTCDateTimeAttribute()
    state_changed_at = UTCDateTimeAttribute(null=True)
    expires_at = TTLAttribute(null=True)  # set once terminated

    @staticmethod
    def instance_key(region: str, instance_id: str) -> str:
        return _key(region, instance_id)

    @staticmethod
    def region_prefix(region: str) -> str:
        return _key(region, "")


class Ec2EventsByAccount(GlobalSecondaryIndex["Ec2Event"]):
    """`kopter events --account A`."""

    Meta = _index_meta("by-account", AllProjection())
    tenant_account = UnicodeAttribute(hash_key=True)
    event_key = UnicodeAttribute(range_key=True)


class Ec2EventsByInstance(GlobalSecondaryIndex["Ec2Event"]):
    """An instance's history: who launched or resized it, for the aggregator's cost jumps."""

    Meta = _index_meta("by-instance", AllProjection())
    tenant_instance = UnicodeAttribute(hash_key=True)
    event_key = UnicodeAttribute(range_key=True)


class Ec2Event(TenantAccountKeyed, Model):
    """A change to an instance (launched, started, stopped, terminated, resized, retagged),
    from a describer diff or a CloudTrail record; one item however many sources saw it."""

    Meta = _meta("Ec2Events")
    tenant_id = UnicodeAttribute(hash_key=True)
    event_key = UnicodeAttribute(range_key=True)  # "<time ISO>#<deterministic id>"
    tenant_account = UnicodeAttribute()
    tenant_instance = UnicodeAttribute()
    account_id = UnicodeAttribute()
    region = UnicodeAttribute()
    instance_id = UnicodeAttribute()
    kind = UnicodeAttribute()
    occurred_at = UTCDateTimeAttribute()
    detail = JSONAttribute(null=True)  # e.g. {"from": "t3.micro", "to": "m5.large"}
    principal_arn = UnicodeAttribute(null=True)
    sources = UnicodeSetAttribute(default=set)  # "describer", "cloudtrail": who saw it
    expires_at = TTLAttribute(null=True)

    by_account = Ec2EventsByAccount()
    by_instance = Ec2EventsByInstance()

    @staticmethod
    def time_key(moment: datetime) -> str:
        """The minute an event key starts with: a bound of a range of them."""
        return f"{moment:%Y-%m-%dT%H:%M}Z"

    @classmethod
    def sort_key(cls, moment: datetime, event_id: str) -> str:
        return _key(cls.time_key(moment), event_id)

    @staticmethod
    def instance_key(tenant_id: str, instance_id: str) -> str:
        return _key(tenant_id, instance_id)


# --- prices and costs -------------------------------------------------------------------------


class ReservedPrice(MapAttribute[str, Any]):
    lease_length = UnicodeAttribute()  # "1yr", "3yr"
    offering_class = UnicodeAttribute()  # "standard", "convertible"
    purchase_option = UnicodeAttribute()  # "No Upfront", "Partial Upfront", "All Upfront"
    upfront_usd = DecimalAttribute()
    hourly_usd = DecimalAttribute()


class Ec2Price(Model):
    """On-demand and reserved prices of one product in one region. Not tenant-owned."""

    Meta = _meta("Ec2Prices")
    region = UnicodeAttribute(hash_key=True)
    # "<instanceType>#<operatingSystem>#<tenancy>#<licenseModel>#<preInstalledSw>"
    price_key = UnicodeAttribute(range_key=True)
    instance_type = UnicodeAttribute()
    operating_system = UnicodeAttribute()
    tenancy = UnicodeAttribute()
    license_model = UnicodeAttribute()
    pre_installed_sw = UnicodeAttribute()
    sku = UnicodeAttribute()
    on_demand_hourly_usd = DecimalAttribute(null=True)
    reserved = ListAttribute(of=ReservedPrice, default=list)
    offer_version = UnicodeAttribute()
    gone = BooleanAttribute(default=False)  # the product left the price list
    digest = UnicodeAttribute(null=True)  # of what the file said: a new one means a change
    updated_at = UTCDateTimeAttribute()

    @staticmethod
    def type_prefix(instance_type: str) -> str:
        return _key(instance_type, "")


class PriceGraphPoint(Model):
    """The cost of one account's hour, with its breakdown. A tenant's series is a range query
    on ``hour_account``; recomputing an hour overwrites the same items."""

    Meta = _meta("PriceGraphData")
    tenant_id = UnicodeAttribute(hash_key=True)
    hour_account = UnicodeAttribute(range_key=True)  # "<YYYY-MM-DDTHH>#<account>"
    hour = UTCDateTimeAttribute()
    account_id = UnicodeAttribute()
    cost_usd = DecimalAttribute()
    by_region = JSONAttribute(default=dict)  # {"us-east-1": "1.23"}: Decimal as strings
    by_instance_type = JSONAttribute(default=dict)
    running_instances = NumberAttribute(default=0)
    missing_prices = JSONAttribute(null=True)  # [{"region": …, "instance_type": …, "count": …}]
    computed_at = UTCDateTimeAttribute()
    expires_at = TTLAttribute(null=True)

    @classmethod
    def sort_key(cls, hour: datetime, account_id: str) -> str:
        return _key(cls.hour_key(hour), account_id)

    @staticmethod
    def hour_key(hour: datetime) -> str:
        """The hour a point's key starts with: a bound of a range of them."""
        return f"{hour:%Y-%m-%dT%H}"


# --- backups ----------------------------------------------------------------------------------


class Ec2Snapshot(TenantAccountKeyed, Model):
    """A snapshot kopter took. The range key names the volume and the 12-hour window, so a run
    repeated after a crash finds its claim instead of snapshotting the volume again. Expiry is
    kopter's (``expires_on``, from the snapshot's own tags), not a TTL: the EBS snapshot is
    deleted first; the TTL only drops the item's history a month after."""

    Meta = _meta("Ec2Snapshots")
    tenant_account = UnicodeAttribute(hash_key=True)
    volume_window = UnicodeAttribute(range_key=True)  # "<region>#<volume id>#<window start>"
    tenant_id = UnicodeAttribute()
    account_id = UnicodeAttribute()
    region = UnicodeAttribute()
    volume_id = UnicodeAttribute()
    instance_id = UnicodeAttribute()
    snapshot_id = UnicodeAttribute(null=True)  # null between the claim and CreateSnapshot
    state = UnicodeAttribute()  # claimed, pending, completed, failed, deleted
    created_at = UTCDateTimeAttribute()  # when the claim was taken (a takeover renews it)
    expires_on = UTCDateTimeAttribute()
    failure = UnicodeAttribute(null=True)
    expires_at = TTLAttribute(null=True)  # a month after expires_on

    @property
    def window(self) -> str:
        return self.volume_window.rsplit("#", 1)[1]

    @staticmethod
    def volume_key(region: str, volume_id: str, window: str) -> str:
        return _key(region, volume_id, window)

    @staticmethod
    def region_prefix(region: str) -> str:
        return _key(region, "")


# --- notifications ----------------------------------------------------------------------------


class FrontendNotification(Model):
    """What the customer's UI shows. The id is derived from what the notification is about, so
    the same notice raised twice (redelivery, two sources) is one item."""

    Meta = _meta("FrontendNotifications")
    tenant_id = UnicodeAttribute(hash_key=True)
    notification_key = UnicodeAttribute(range_key=True)  # "<time ISO>#<deterministic id>"
    kind = UnicodeAttribute()
    subject = UnicodeAttribute()
    severity = UnicodeAttribute()  # info, warning, high, critical
    title = UnicodeAttribute()
    body = UnicodeAttribute()
    links = JSONAttribute(default=dict)
    created_at = UTCDateTimeAttribute()
    read = BooleanAttribute(default=False)
    read_at = UTCDateTimeAttribute(null=True)
    published = BooleanAttribute(default=False)  # sent to the SNS topic, when one is set
    expires_at = TTLAttribute(null=True)

    @staticmethod
    def sort_key(occurred_at: str, notification_id: str) -> str:
        return _key(occurred_at, notification_id)


# --- system state -----------------------------------------------------------------------------


class GlobalItem(Model):
    """System state that belongs to no tenant: which tenant owns an account id
    (``account-owner#<id>``), price-list versions and ETags, job watermarks, processed-object
    markers. One table, keys namespaced by their first segment."""

    Meta = _meta("Global")
    key = UnicodeAttribute(hash_key=True)
    value = JSONAttribute(null=True)
    updated_at = UTCDateTimeAttribute()
    expires_at = TTLAttribute(null=True)

    @staticmethod
    def owner_key(account_id: str) -> str:
        """The claim of an account id by the tenant that registered it."""
        return _key("account-owner", account_id)

    @staticmethod
    def described_key(tenant_id: str, account_id: str, region: str) -> str:
        """The describer's last run over one (account, region)."""
        return _key("described", tenant_id, account_id, region)

    @staticmethod
    def described_prefix(tenant_id: str) -> str:
        return _key("described", tenant_id, "")

    @staticmethod
    def ingested_key(source: str) -> str:
        """A log object ingested (``s3://bucket/key``), with its ETag."""
        return _key("ingested", source)

    @staticmethod
    def refused_key(source: str) -> str:
        return _key("refused", source)

    @staticmethod
    def price_region_key(region: str) -> str:
        """The price list's version and ETag of one region."""
        return _key("pricing", "region", region)


ALL_MODELS: tuple[type[Model], ...] = (
    Tenant,
    AwsAccount,
    AuditLogEvent,
    AuditDigest,
    Ec2Instance,
    Ec2Event,
    Ec2Price,
    PriceGraphPoint,
    Ec2Snapshot,
    FrontendNotification,
    GlobalItem,
)


_bound: Settings | None = None


def base_name(model: type[Model]) -> str:
    """The model's table name without a deployment's prefix."""
    name: str = model.Meta.base_name  # type: ignore[attr-defined]
    return name


def bind(settings: Settings) -> None:
    """Point every model at ``settings``' deployment: its prefix, region and endpoint."""
    global _bound
    for model in ALL_MODELS:
        model.Meta.table_name = settings.prefix + base_name(model)
        model.Meta.region = settings.region
        model.Meta.host = settings.aws_endpoint_url
        model._connection = None  # PynamoDB keeps a model's connection until its table changes
    connection.cache_clear()
    _bound = settings


def bound(settings: Settings | None = None) -> Settings:
    """The settings the tables are bound to; given ``settings``, those must name the same tables."""
    if _bound is None:
        raise TablesNotBound("kopter.tables.bind(settings) was not called in this process")
    same = (_bound.prefix, _bound.region, _bound.aws_endpoint_url)
    if (
        settings is not None
        and (settings.prefix, settings.region, settings.aws_endpoint_url) != same
    ):
        raise TablesNotBound(
            f"the tables are bound to prefix {_bound.prefix!r}, not {settings.prefix!r}"
        )
    return _bound


@cache
def connection() -> Connection:
    """A connection to the bound deployment's DynamoDB, for transactions across tables."""
    settings = bound()
    return Connection(region=settings.region, host=settings.aws_endpoint_url)


# A forked child must not share the parent's HTTP connections.
os.register_at_fork(after_in_child=connection.cache_clear)
