"""What the UI shows a tenant, where else it is delivered, and system state that belongs to no
tenant."""

from __future__ import annotations

from pynamodb.attributes import (
    BooleanAttribute,
    JSONAttribute,
    TTLAttribute,
    UnicodeAttribute,
    UTCDateTimeAttribute,
)
from pynamodb.models import Model

from kopter.tables.base import composite_key, meta


class FrontendNotification(Model):
    """What the customer's UI shows. The id is derived from what the notification is about, so
    the same notice raised twice (redelivery, two sources) is one item."""

    Meta = meta("FrontendNotifications")
    tenant_id = UnicodeAttribute(hash_key=True)
    notification_key = UnicodeAttribute(range_key=True)  # "<time ISO>#<deterministic id>"
    kind = UnicodeAttribute()
    subject = UnicodeAttribute()
    severity = UnicodeAttribute()  # info, warning, high, critical
    title = UnicodeAttribute()
    body = UnicodeAttribute()
    links = JSONAttribute(default=dict)
    detail = JSONAttribute(null=True)  # what a kind carries besides: a finding's rules and call
    created_at = UTCDateTimeAttribute()
    read = BooleanAttribute(default=False)
    read_at = UTCDateTimeAttribute(null=True)
    published = BooleanAttribute(default=False)  # sent to the SNS topic, when one is set
    # Its deliveries to the tenant's channels: claimed by the task enqueueing them, and all
    # enqueued (kopter/channels/dispatch.py).
    dispatch_claimed_at = UTCDateTimeAttribute(null=True)
    dispatched = BooleanAttribute(default=False)
    expires_at = TTLAttribute(null=True)

    @staticmethod
    def sort_key(occurred_at: str, notification_id: str) -> str:
        return composite_key(occurred_at, notification_id)


class Channel(Model):
    """Where a tenant's notifications are also delivered: a webhook, a Slack incoming webhook or
    an email address (kopter/channels/). The id is random: a channel is what the tenant added,
    not derived from anything else."""

    Meta = meta("Channels")
    tenant_id = UnicodeAttribute(hash_key=True)
    channel_id = UnicodeAttribute(range_key=True)
    kind = UnicodeAttribute()  # webhook, slack, email
    target = UnicodeAttribute()  # the URL, or the email address
    secret = UnicodeAttribute(null=True)  # a webhook's signing key: shown once, when added
    min_severity = UnicodeAttribute()  # info, warning, high, critical
    created_at = UTCDateTimeAttribute()
    last_delivered_at = UTCDateTimeAttribute(null=True)
    last_failed_at = UTCDateTimeAttribute(null=True)
    last_failure = UnicodeAttribute(null=True)


class GlobalItem(Model):
    """System state that belongs to no tenant: which tenant owns an account id
    (``account-owner#<id>``), price-list versions and ETags, job watermarks, processed-object
    markers. One table, keys namespaced by their first segment."""

    Meta = meta("Global")
    key = UnicodeAttribute(hash_key=True)
    value = JSONAttribute(null=True)
    updated_at = UTCDateTimeAttribute()
    expires_at = TTLAttribute(null=True)

    @staticmethod
    def owner_key(account_id: str) -> str:
        """The claim of an account id by the tenant that registered it."""
        return composite_key("account-owner", account_id)

    @staticmethod
    def described_key(tenant_id: str, account_id: str, region: str) -> str:
        """The describer's last run over one (account, region)."""
        return composite_key("described", tenant_id, account_id, region)

    @staticmethod
    def described_prefix(tenant_id: str) -> str:
        return composite_key("described", tenant_id, "")

    @staticmethod
    def ingested_key(source: str) -> str:
        """A log object ingested (``s3://bucket/key``), with its ETag."""
        return composite_key("ingested", source)

    @staticmethod
    def refused_key(source: str) -> str:
        return composite_key("refused", source)

    @staticmethod
    def price_region_key(region: str) -> str:
        """The price list's version and ETag of one region."""
        return composite_key("pricing", "region", region)
