"""Channels: where a tenant's notifications are delivered, and how the last delivery went.

The row never holds a webhook's secret (it is shown once, when the channel is added) nor what
else in a URL works as a key: a Slack URL's last part, a webhook URL's query.
"""

from __future__ import annotations

from datetime import datetime
from urllib.parse import urlsplit, urlunsplit

from typing_extensions import TypedDict  # pydantic reads TypedDicts from here before 3.12

from kopter.channels import store
from kopter.tables import Channel

HIDDEN = "…"


class ChannelRow(TypedDict):
    id: str
    kind: str  # webhook, slack, email
    target: str  # the URL or address, without what works as a key (see the module)
    min_level: str  # info, warning, high, critical: it gets notifications of this and above
    created_at: datetime
    last_delivered_at: datetime | None
    last_failed_at: datetime | None
    last_failure: str | None  # why the last failed attempt failed


def query(tenant_id: str) -> list[Channel]:
    return sorted(store.listed(tenant_id), key=lambda c: c.created_at)


def view(c: Channel) -> ChannelRow:
    return {
        "id": c.channel_id,
        "kind": c.kind,
        "target": shown_target(c),
        "min_level": c.min_severity,
        "created_at": c.created_at,
        "last_delivered_at": c.last_delivered_at,
        "last_failed_at": c.last_failed_at,
        "last_failure": c.last_failure,
    }


def shown_target(c: Channel) -> str:
    if c.kind == "email":
        return c.target
    parts = urlsplit(c.target)
    path = parts.path
    if c.kind == "slack":
        path = path.rsplit("/", 1)[0] + "/" + HIDDEN
    return urlunsplit(parts._replace(path=path, query=HIDDEN if parts.query else ""))
