"""Frontend notifications: what a tenant's UI shows, newest first."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pynamodb.pagination import ResultIterator
from typing_extensions import TypedDict  # pydantic reads TypedDicts from here before 3.12

from kopter.reads.pages import Key, Partition, page_size
from kopter.tables import FrontendNotification


@dataclass(frozen=True)
class NotificationsQuery:
    tenant_id: str
    unread_only: bool = False
    limit: int | None = None
    start: Key | None = None  # the key of the last item read: continue after it


class NotificationRow(TypedDict):
    id: str  # the item's key, base64url-encoded: opaque to the caller
    notification_key: str  # "<time ISO>#<deterministic id>"
    created_at: datetime
    kind: str
    subject: str
    severity: str  # info, warning, high, critical
    title: str
    body: str
    links: dict[str, Any]
    detail: dict[str, Any] | None  # a finding's rules and call (kind "finding")
    read: bool
    read_at: datetime | None


def notification_id(key: str) -> str:
    return base64.urlsafe_b64encode(key.encode()).rstrip(b"=").decode()


def partition(q: NotificationsQuery) -> Partition:
    return Partition({"tenant_id": q.tenant_id}, frozenset({"notification_key"}))


def query(q: NotificationsQuery) -> ResultIterator[FrontendNotification]:
    return FrontendNotification.query(
        q.tenant_id,
        filter_condition=FrontendNotification.read == False if q.unread_only else None,  # noqa: E712
        scan_index_forward=False,
        limit=q.limit,
        page_size=page_size(q.limit, q.unread_only),
        last_evaluated_key=q.start,
    )


def view(n: FrontendNotification) -> NotificationRow:
    return {
        "id": notification_id(n.notification_key),
        "notification_key": n.notification_key,
        "created_at": n.created_at,
        "kind": n.kind,
        "subject": n.subject,
        "severity": n.severity,
        "title": n.title,
        "body": n.body,
        "links": n.links or {},
        "detail": n.detail,
        "read": n.read,
        "read_at": n.read_at,
    }
