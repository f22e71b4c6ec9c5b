"""``GET /v1/notifications`` (newest first, with a ``next`` cursor) and
``POST /v1/notifications/{id}/read``. An id is the item's key, base64url-encoded: opaque to the
caller and found under the caller's tenant only, so another tenant's id is a 404."""

from __future__ import annotations

import base64
import binascii
from dataclasses import replace
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from kopter import dynamo
from kopter.api.cursors import Pager, Scope, read_page
from kopter.api.errors import ApiError, responses
from kopter.api.identity import Caller
from kopter.api.params import Cursor, Limit
from kopter.reads.notifications import (
    NotificationRow,
    NotificationsQuery,
    notification_id,
    partition,
    query,
    view,
)
from kopter.tables import FrontendNotification

router = APIRouter(tags=["notifications"])
MAX_KEY_BYTES = 1024  # DynamoDB's limit for a range key


class NotificationsPage(BaseModel):
    items: list[NotificationRow]
    next: str | None


def _key(notification: str) -> str:
    try:
        key = base64.urlsafe_b64decode(notification + "=" * (-len(notification) % 4)).decode()
    except (ValueError, binascii.Error):  # also a UnicodeDecodeError
        key = ""
    if not 0 < len(key.encode()) <= MAX_KEY_BYTES or notification_id(key) != notification:
        raise ApiError(404, "no such notification")
    return key


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
    q = NotificationsQuery(tenant, unread_only=unread, limit=limit)
    p = partition(q)
    scope = Scope(tenant, "notifications", {"unread": unread}, p.hash_keys, p.range_keys)
    if cursor:
        q = replace(q, start=cursors.decode(scope, cursor))
    found, last = read_page(query(q), scope, limit, FrontendNotification.from_raw_data)
    return {
        "items": [view(n) for n in found],
        "next": cursors.encode(scope, last) if last else None,
    }


@router.post(
    "/v1/notifications/{id}/read",
    response_model=NotificationRow,
    responses=responses(401, 404),
    summary="Mark a notification read",
    description="The first time it was read stays; the notification is returned.",
)
def mark_read(tenant: Caller, id: str) -> NotificationRow:
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
    return view(item)
