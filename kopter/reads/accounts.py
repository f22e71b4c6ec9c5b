"""Accounts: a tenant's AWS accounts, their health, and the link that creates each one's stack.

The row is what a tenant may see of its own accounts (the read API serves it). The ExternalId is
not in it: it is the operator's to hand out (`kopter accounts add`), so ``operator_view`` adds it
for the command line alone; the onboarding link carries it only as the stack's parameter.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from typing_extensions import TypedDict  # pydantic reads TypedDicts from here before 3.12

from kopter.accounts import list_accounts, onboarding_link
from kopter.settings import Settings
from kopter.tables import AwsAccount


class AccountRow(TypedDict):
    tenant_id: str
    account_id: str
    role_arn: str
    regions: list[str]
    cloudtrail_bucket: str | None
    cloudtrail_prefix: str | None
    healthy: bool
    health_reason: str | None
    last_success_at: datetime | None
    created_at: datetime
    rotation_pending: bool  # a new ExternalId issued, the role not yet seen trusting it
    removed_at: datetime | None  # disconnected: nothing runs for it, its data is kept
    onboarding_link: str | None  # CloudFormation's quick-create link of the account's stack


def query(tenant_id: str, include_removed: bool = False) -> list[AwsAccount]:
    """The tenant's connected accounts (and, asked, those disconnected whose data is kept)."""
    return list_accounts(tenant_id, include_removed)


def view(a: AwsAccount, settings: Settings) -> AccountRow:
    return {
        "tenant_id": a.tenant_id,
        "account_id": a.account_id,
        "role_arn": a.role_arn,
        "regions": list(a.regions),
        "cloudtrail_bucket": a.cloudtrail_bucket,
        "cloudtrail_prefix": a.cloudtrail_prefix,
        "healthy": a.healthy,
        "health_reason": a.health_reason,
        "last_success_at": a.last_success_at,
        "created_at": a.created_at,
        "rotation_pending": bool(a.previous_external_id),
        "removed_at": a.removed_at,
        "onboarding_link": None if a.removed_at else onboarding_link(a, settings),
    }


def operator_view(a: AwsAccount, settings: Settings) -> dict[str, Any]:
    """The row with the ExternalId, for the operator who gives it to the customer."""
    return {**view(a, settings), "external_id": a.external_id}
