"""``GET /v1/notifications`` (newest first, with a ``next`` cursor) and
``POST /v1/notifications/{id}/read``. An id is the item's key, base64url-encoded: opaque to the
caller and found under the caller's tenant only, so another tenant's id is a 404."""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from kopter import dynamo
from kopter.api.cursors import FILTERED_PAGE_SIZE, Pager, Scope, read_page
from kopter.api.errors import ApiError, responses
from kopter.api.identity import Caller
from kopter.api.params import Cursor, Limit
from kopter.tables import FrontendNotification

router = APIRouter(tags=["notifications"])
MAX_KEY_BYTES = 1024  # DynamoDB's limit for a range key


class Notification(BaseModel):
    id: str
    created_at: datetime
    kind: str
    subject: str
    severity: str  # info, warning, high, critical
    title: str
    body: str
    links: dict[str, Any]
    read: bool
    read_at: datetime | None


class NotificationsPage(BaseModel):
    items: list[Notification]
    next: str | None


def notification_id(key: str) -> str:
    return base64.urlsafe_b64encode(key.encode()).rstrip(b"=").decode()


def _key(notification: str) -> str:
    try:
        key = base64.urlsafe_b64decode(notification + "=" * (-len(notification) % 4)).decode()
    except (ValueError, binascii.Error):  # also a UnicodeDecodeError
        key = ""
    if not 0 < len(key.encode()) <= MAX_KEY_BYTES or notification_id(key) != notification:
        raise ApiError(404, "no such notification")
    return key


def _row(n: FrontendNotification) -> dict[str, Any]:
    return {
        "id": notification_id(n.notification_key),
        "created_at": n.created_at,
        "kind": n.kind,
        "subject": n.subject,
        "severity": n.severity,
        "title": n.title,
        "body": n.body,
        "links": n.links or {},
        "read": n.read,
        "read_at": n.read_at,
    }


@router.get(
    "/v1/notifications",
    response_model=NotificationsPage,
    responses=responses(400, 401),
    summary="What the tenant's UI shows, newest first",
)
def notifications(
    tenant: Caller,
    cursors: Pager,
    unread: Annotated[bool, Query(description="Only those not read yet.")] = False,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> dict[str, Any]:
    scope = Scope(
        tenant,
        "notifications",
        {"unread": unread},
        {"tenant_id": tenant},
        frozenset({"notification_key"}),
    )
    results = FrontendNotification.query(
        tenant,
        filter_condition=FrontendNotification.read == False if unread else None,  # noqa: E712
        scan_index_forward=False,
        page_size=FILTERED_PAGE_SIZE if unread else limit,
        last_evaluated_key=cursors.decode(scope, cursor) if cursor else None,
    )
    found, last = read_page(results, scope, limit, FrontendNotification.from_raw_data)
    return {
        "items": [_row(n) for n in found],
        "next": cursors.encode(scope, last) if last else None,
    }


@router.post(
    "/v1/notifications/{id}/read",
    response_model=Notification,
    responses=responses(401, 404),
    summary="Mark a notification read",
)
def mark_read(tenant: Caller, id: str) -> dict[str, Any]:
    item = FrontendNotification(tenant, _key(id))
    read = [
        FrontendNotification.read.set(True),
        FrontendNotification.read_at.set(
            FrontendNotification.read_at | datetime.now(UTC)  # the first time stays
        ),
    ]
    # Conditioned on the item: an update must never create one in the tenant's partition.
    if not dynamo.update_if(item, read, FrontendNotification.notification_key.exists()):
        raise ApiError(404, "no such notification")
    return _row(item)
