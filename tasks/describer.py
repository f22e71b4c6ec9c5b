"""The `describer` queue: customer accounts' EC2 fleets, and whether kopter can reach them."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from kopter import accounts
from kopter.crossaccount import shared_sessions
from kopter.errors import NotBuilt
from tasks.app import app


@app.task
def check_account(tenant_id: str, account_id: str) -> list[dict[str, Any]]:
    """Assume the account's role, try what kopter needs there, and record its health."""
    account = accounts.get_account(accounts.resolve_tenant(tenant_id), account_id)
    return [asdict(c) for c in accounts.check_account(account, shared_sessions())]


@app.task
def describe_all_accounts() -> None:
    raise NotBuilt("the EC2 describer", issue=4)
