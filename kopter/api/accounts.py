"""``GET /v1/accounts``: the tenant's AWS accounts and their health, and the link that creates
each one's stack (its ExternalId is a parameter there: the tenant's own, shown to it alone)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel

from kopter.accounts import list_accounts, onboarding_link
from kopter.api.errors import responses
from kopter.api.identity import Caller

router = APIRouter(tags=["accounts"])


class Account(BaseModel):
    account_id: str
    role_arn: str
    regions: list[str]
    cloudtrail_bucket: str | None
    cloudtrail_prefix: str | None
    healthy: bool
    health_reason: str | None
    last_success_at: datetime | None
    created_at: datetime
    removed_at: datetime | None  # disconnected: nothing runs for it, its data is kept
    onboarding_link: str | None  # CloudFormation's quick-create link of the account's stack


class Accounts(BaseModel):
    items: list[Account]


@router.get(
    "/v1/accounts",
    response_model=Accounts,
    responses=responses(401),
    summary="The tenant's AWS accounts and their health",
)
def accounts(tenant: Caller, request: Request) -> dict[str, Any]:
    settings = request.app.state.settings
    return {
        "items": [
            {
                "account_id": a.account_id,
                "role_arn": a.role_arn,
                "regions": list(a.regions),
                "cloudtrail_bucket": a.cloudtrail_bucket,
                "cloudtrail_prefix": a.cloudtrail_prefix,
                "healthy": a.healthy,
                "health_reason": a.health_reason,
                "last_success_at": a.last_success_at,
                "created_at": a.created_at,
                "removed_at": a.removed_at,
                "onboarding_link": None if a.removed_at else onboarding_link(a, settings),
            }
            for a in list_accounts(tenant, include_removed=True)
        ]
    }
