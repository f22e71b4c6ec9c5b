"""The cost graph: a tenant's EC2 cost per hour (USD, on-demand prices), oldest first, summed
over its accounts or split by account, region or instance type. The aggregator writes a point
per hour and account; a read sums them."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal

from typing_extensions import TypedDict  # pydantic reads TypedDicts from here before 3.12

from kopter.costs.aggregator import CENT
from kopter.tables import PriceGraphPoint

By = Literal["account", "region", "instance-type"]


@dataclass(frozen=True)
class CostQuery:
    tenant_id: str
    since: datetime
    until: datetime
    by: By | None = None  # split each hour


@dataclass(frozen=True)
class HourCost:
    """An hour's cost, of the whole fleet or of one account, region or instance type."""

    hour: str  # "2026-03-01T13:00Z"
    by: By | None
    name: str  # the account, region or instance type ("" when not split)
    cost_usd: Decimal
    missing_prices: int  # running instances without a price, not in cost_usd


class _Hour(TypedDict):
    hour: str  # "2026-03-01T13:00Z"
    cost_usd: str  # exact decimal, to the cent


# total=False rather than NotRequired: Python 3.11 does not see NotRequired in string annotations.
class CostRow(_Hour, total=False):
    account: str
    region: str
    instance_type: str
    missing_prices: int  # running instances without a price, not in cost_usd


def query(q: CostQuery) -> Iterator[HourCost]:
    """The hours from ``since`` to ``until``: ``missing_prices`` counts the running instances of
    that hour (and split) that have no price, so are not in its cost."""
    totals: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    missing: dict[tuple[str, str], int] = defaultdict(int)
    for point in PriceGraphPoint.query(
        q.tenant_id,
        PriceGraphPoint.hour_account.between(
            PriceGraphPoint.hour_key(q.since), PriceGraphPoint.hour_key(q.until) + "~"
        ),
    ):
        hour = point.hour.strftime("%Y-%m-%dT%H:00Z")
        unpriced = point.missing_prices or []
        if q.by == "account":
            totals[(hour, point.account_id)] += point.cost_usd
            missing[(hour, point.account_id)] += sum(m["count"] for m in unpriced)
        elif q.by in ("region", "instance-type"):
            split = point.by_region if q.by == "region" else point.by_instance_type
            for name, cost in (split or {}).items():
                totals[(hour, name)] += Decimal(cost)
            for m in unpriced:
                name = m["region"] if q.by == "region" else m["instance_type"]
                totals[(hour, name)] += 0  # an hour whose only instances have no price
                missing[(hour, name)] += m["count"]
        else:
            totals[(hour, "")] += point.cost_usd
            missing[(hour, "")] += sum(m["count"] for m in unpriced)
    for (hour, name), cost in sorted(totals.items()):
        yield HourCost(hour, q.by, name, cost, missing[(hour, name)])


def view(c: HourCost) -> CostRow:
    row: CostRow = {"hour": c.hour, "cost_usd": str(c.cost_usd.quantize(CENT))}
    if c.by == "account":
        row["account"] = c.name
    elif c.by == "region":
        row["region"] = c.name
    elif c.by == "instance-type":
        row["instance_type"] = c.name
    if c.missing_prices:
        row["missing_prices"] = c.missing_prices
    return row
