"""Snapshots: what the backup job took of a tenant's volumes (and failed to, or deleted when they
expired), newest window first."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from typing_extensions import TypedDict  # pydantic reads TypedDicts from here before 3.12

from kopter import accounts
from kopter.tables import Ec2Snapshot


class SnapshotRow(TypedDict):
    window: str  # the start of the 12-hour window it was taken in
    account_id: str
    region: str
    instance_id: str
    volume_id: str
    snapshot_id: str | None  # none between the claim and CreateSnapshot, or when it failed
    state: str  # claimed, pending, completed, failed, deleted
    expires_on: datetime
    failure: str | None


@dataclass(frozen=True)
class SnapshotQuery:
    tenant_id: str
    account: str | None = None  # only this account, which must be the tenant's
    after: str | None = None  # a row's ``position``: only the rows listed after it


def position(s: Ec2Snapshot) -> str:
    """Where a row stands in the listing's order, for a page to continue after it."""
    return f"{s.window}#{s.account_id}#{s.region}#{s.volume_id}"


def query(q: SnapshotQuery) -> list[Ec2Snapshot]:
    """Newest window first, then by account, region and volume. A connected account's snapshots
    unless ``account`` names one (also one disconnected whose data is kept)."""
    if q.account:
        account_ids = [accounts.get_account(q.tenant_id, q.account).account_id]
    else:
        account_ids = [a.account_id for a in accounts.list_accounts(q.tenant_id)]
    items = [
        i for a in account_ids for i in Ec2Snapshot.query(Ec2Snapshot.account_key(q.tenant_id, a))
    ]
    items.sort(key=_within_window)
    items.sort(key=lambda i: i.window, reverse=True)
    if q.after is None:
        return items
    window, *within = q.after.split("#")
    return [
        i
        for i in items
        if i.window < window or (i.window == window and _within_window(i) > tuple(within))
    ]


def _within_window(s: Ec2Snapshot) -> tuple[str, ...]:
    return (s.account_id, s.region, s.volume_id)


def view(s: Ec2Snapshot) -> SnapshotRow:
    return {
        "window": s.window,
        "account_id": s.account_id,
        "region": s.region,
        "instance_id": s.instance_id,
        "volume_id": s.volume_id,
        "snapshot_id": s.snapshot_id,
        "state": s.state,
        "expires_on": s.expires_on,
        "failure": s.failure,
    }
