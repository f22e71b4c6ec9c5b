"""``GET /v1/accounts``: the tenant's AWS accounts and their health, and the link that creates
each one's stack (its ExternalId is a parameter there: the tenant's own, shown to it alone)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel

from kopter.api.errors import responses
from kopter.api.identity import Caller
from kopter.reads.accounts import AccountRow, query, view

router = APIRouter(tags=["accounts"])


class Accounts(BaseModel):
    items: list[AccountRow]


@router.get(
    "/v1/accounts",
    response_model=Accounts,
    responses=responses(401),
    summary="The tenant's AWS accounts and their health",
    description="Disconnected ones with `removed_at`; `rotation_pending` while a new ExternalId "
    "waits for the role to trust it; each connected one's `onboarding_link` (the quick-create "
    "link of its stack, the tenant's own ExternalId among its parameters) once the template is "
    "published.",
)
def accounts(tenant: Caller, request: Request) -> dict[str, Any]:
    settings = request.app.state.settings
    return {"items": [view(a, settings) for a in query(tenant, include_removed=True)]}
