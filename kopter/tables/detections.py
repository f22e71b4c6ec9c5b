"""Detections: what the rules found as records were ingested, and each tenant's rules."""

from __future__ import annotations

from pynamodb.attributes import (
    BooleanAttribute,
    JSONAttribute,
    TTLAttribute,
    UnicodeAttribute,
    UTCDateTimeAttribute,
)
from pynamodb.models import Model

from kopter.tables.base import meta


class Finding(Model):
    """One record that rules matched as it was ingested (``kopter/detections/findings.py``),
    keyed as the record's audit-log item is: a file delivered twice, or a record ingested by
    two paths, finds the same key, and the finding is stored once. It names every rule that
    matched the record, most severe first."""

    Meta = meta("Findings")
    tenant_id = UnicodeAttribute(hash_key=True)
    event_key = UnicodeAttribute(range_key=True)  # the record's "<eventTime ISO>#<eventID>"
    event_time = UnicodeAttribute()
    event_id = UnicodeAttribute()
    event_source = UnicodeAttribute()
    event_name = UnicodeAttribute()
    account_id = UnicodeAttribute()
    region = UnicodeAttribute()
    principal = UnicodeAttribute()  # the ARN, else the service that called, else the type
    source_ip = UnicodeAttribute(null=True)
    error_code = UnicodeAttribute(null=True)
    level = UnicodeAttribute()  # the most severe rule's, in Sigma's names
    rules = JSONAttribute()  # [{"id", "title", "source", "author", "level"}], most severe first
    source_object = UnicodeAttribute(null=True)  # where the record was first found
    created_at = UTCDateTimeAttribute()
    expires_at = TTLAttribute(null=True)  # the audit log's retention


class TenantRule(Model):
    """A tenant's own Sigma rule (``source`` tenant, with its YAML), or a tenant's choice to
    turn one of kopter's or SigmaHQ's rules on or off (``source`` kopter or sigma, no text): a
    rule the tenant never touched has no item and its default state."""

    Meta = meta("DetectionRules")
    tenant_id = UnicodeAttribute(hash_key=True)
    rule_id = UnicodeAttribute(range_key=True)
    source = UnicodeAttribute()  # tenant, kopter, sigma
    enabled = BooleanAttribute()
    text = UnicodeAttribute(null=True)  # the tenant's rule as it was added (YAML)
    updated_at = UTCDateTimeAttribute()
