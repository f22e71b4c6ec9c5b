"""Customers and their AWS accounts."""

from __future__ import annotations

from pynamodb.attributes import (
    BooleanAttribute,
    ListAttribute,
    NumberAttribute,
    UnicodeAttribute,
    UTCDateTimeAttribute,
)
from pynamodb.models import Model

from kopter.tables.base import meta


class Tenant(Model):
    """A customer. ``tenant_id`` is the customer's identity id (e.g. their Cognito identity)."""

    Meta = meta("Tenants")
    tenant_id = UnicodeAttribute(hash_key=True)
    name = UnicodeAttribute()
    created_at = UTCDateTimeAttribute()
    removed_at = UTCDateTimeAttribute(null=True)  # left the service: its identity is refused


class AwsAccount(Model):
    """An AWS account a tenant connected: the role kopter assumes there, and its health."""

    Meta = meta("AwsAccounts")
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
