"""The CloudTrail audit log and its daily digests."""

from __future__ import annotations

from pynamodb.attributes import (
    BooleanAttribute,
    JSONAttribute,
    NumberAttribute,
    TTLAttribute,
    UnicodeAttribute,
    UTCDateTimeAttribute,
)
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model

from kopter.tables.base import TenantAccountKeyed, composite_key, index_meta, meta


class AuditEventsByAccount(GlobalSecondaryIndex["AuditLogEvent"]):
    """`kopter audit --account A` and the per-account backfill checks: newest first."""

    Meta = index_meta("by-account", AllProjection())
    tenant_account = UnicodeAttribute(hash_key=True)
    event_key = UnicodeAttribute(range_key=True)


class AuditEventsByName(GlobalSecondaryIndex["AuditLogEvent"]):
    """`kopter audit --event-name N` and the daily audit's look-ups of specific calls."""

    Meta = index_meta("by-event-name", AllProjection())
    tenant_event_name = UnicodeAttribute(hash_key=True)
    event_key = UnicodeAttribute(range_key=True)


class AuditEventsByPrincipal(GlobalSecondaryIndex["AuditLogEvent"]):
    """`kopter audit --user ARN`: everything one principal did."""

    Meta = index_meta("by-principal", AllProjection())
    tenant_principal = UnicodeAttribute(hash_key=True)
    event_key = UnicodeAttribute(range_key=True)


class AuditLogEvent(TenantAccountKeyed, Model):
    """One normalized CloudTrail record. Keyed by ``eventTime#eventID``: a record seen in two
    files, or a file delivered twice, writes the same item."""

    Meta = meta("AuditLogEvents")
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
        return composite_key(event_time, event_id)

    @staticmethod
    def event_name_key(tenant_id: str, event_name: str) -> str:
        return composite_key(tenant_id, event_name)

    @staticmethod
    def principal_key(tenant_id: str, principal_arn: str) -> str:
        return composite_key(tenant_id, principal_arn)


class AuditDigest(Model):
    """The daily audit of one tenant's UTC day (``kopter/cloudtrail/digest.py``). Keyed by the
    day: running a day again overwrites its digest. Lists are cut to their largest entries so
    a busy day still fits in one item."""

    Meta = meta("AuditDigests")
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
