"""A tenant's channels: added, listed, removed, and found for a notification.

A channel is checked when it is added (its URL by the guard, resolving its host; an email
channel needs a sender) and nothing is stored when it is refused. A webhook's secret signs its
deliveries: given or made here, it is returned once, to the caller who added the channel, and
never listed again.
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime

from kopter import dynamo, notifications
from kopter.channels import guard
from kopter.errors import NotFound, Refused
from kopter.settings import EMAIL_ADDRESS, Settings
from kopter.tables import Channel

KINDS = ("webhook", "slack", "email")
MAX_CHANNELS = 20  # per tenant: what one tenant can make kopter call for each notification
_SECRET = re.compile(r"[\x21-\x7e]{16,256}")  # printable ASCII without spaces
_ID = re.compile(r"[0-9a-f]{16}")  # as ``add`` draws them


def add(
    tenant_id: str,
    kind: str,
    target: str,
    settings: Settings,
    secret: str | None = None,
    min_level: str = "info",
) -> tuple[Channel, str | None]:
    """Store a new channel; the channel and its webhook secret (None for other kinds)."""
    target = target.strip()
    min_severity = notifications.severity_named(min_level)
    if kind == "webhook":
        guard.addresses(guard.endpoint(target), settings.channels_allow_private)
        if secret is None:
            secret = secrets.token_urlsafe(32)
        elif not _SECRET.fullmatch(secret):
            raise Refused("a secret is 16 to 256 printable characters, without spaces")
    elif secret is not None:
        raise Refused(f"{kind} channels have no secret: only a webhook is signed")
    elif kind == "slack":
        found = guard.slack_endpoint(target, settings.channels_allow_private)
        guard.addresses(found, settings.channels_allow_private)
    elif kind == "email":
        if not re.fullmatch(EMAIL_ADDRESS, target):
            raise Refused(f"{target!r} is not an email address like secops@example.com")
        if settings.channels_email_from is None:
            raise Refused("email channels need KOPTER_CHANNELS_EMAIL_FROM, a sender SES verified")
    else:
        raise Refused(f"kind {kind!r} is not one of {', '.join(KINDS)}")
    if len(listed(tenant_id)) >= MAX_CHANNELS:
        raise Refused(f"a tenant has at most {MAX_CHANNELS} channels: remove one first")
    channel = Channel(
        tenant_id,
        secrets.token_hex(8),
        kind=kind,
        target=target,
        secret=secret,
        min_severity=min_severity,
        created_at=datetime.now(UTC),
    )
    if not dynamo.put_if_absent(channel):
        raise Refused("a channel id was drawn twice: add it again")
    return channel, secret


def listed(tenant_id: str) -> list[Channel]:
    return list(Channel.query(tenant_id, consistent_read=True))


def get(tenant_id: str, channel_id: str) -> Channel | None:
    if not _ID.fullmatch(channel_id):
        return None
    try:
        return Channel.get(tenant_id, channel_id, consistent_read=True)
    except Channel.DoesNotExist:
        return None


def remove(tenant_id: str, channel_id: str) -> None:
    """Delete the channel: a delivery already on its way finds it gone and stops."""
    gone = not _ID.fullmatch(channel_id)
    if gone or not dynamo.delete_if(Channel(tenant_id, channel_id), Channel.channel_id.exists()):
        raise NotFound(f"no channel {channel_id} for this tenant")


def wanting(tenant_id: str, severity: str) -> list[Channel]:
    """The tenant's channels that want a notification of ``severity``."""
    return [c for c in listed(tenant_id) if notifications.at_least(severity, c.min_severity)]


def record(channel: Channel, failure: str | None) -> None:
    """A delivery's outcome on its channel, for `kopter channels list`: delivered, or why not."""
    now = datetime.now(UTC)
    if failure is None:
        actions = [Channel.last_delivered_at.set(now)]
    else:
        actions = [Channel.last_failed_at.set(now), Channel.last_failure.set(failure[:500])]
    # Conditioned on the item: a channel removed meanwhile is not written back.
    dynamo.update_if(channel, actions, Channel.channel_id.exists())
