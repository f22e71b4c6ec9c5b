"""Prices: the stored EC2 price list of a region, exact (USD as decimal strings)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

from typing_extensions import TypedDict  # pydantic reads TypedDicts from here before 3.12

from kopter.pricing.store import find_prices
from kopter.tables import Ec2Price

# "class" is a keyword: the functional form.
ReservedRow = TypedDict(
    "ReservedRow",
    {
        "lease": str,  # 1yr, 3yr
        "class": str,  # standard, convertible
        "option": str,  # No Upfront, Partial Upfront, All Upfront
        "upfront_usd": str | None,
        "hourly_usd": str | None,
    },
)


class PriceRow(TypedDict):
    instance_type: str
    os: str
    tenancy: str
    license: str
    software: str
    on_demand_hourly_usd: str | None
    reserved: list[ReservedRow]
    sku: str
    version: str  # of the price list it was last read from
    gone: bool  # the product left the price list


@dataclass(frozen=True)
class PriceQuery:
    region: str
    instance_type: str | None = None  # exact
    operating_system: str | None = None  # any case
    tenancy: str | None = None  # any case
    include_gone: bool = False
    after: str | None = None  # a price key: only the prices after it


def query(q: PriceQuery) -> Iterator[Ec2Price]:
    """In price-key order: instance type, OS, tenancy, license, software."""
    return find_prices(
        q.region, q.instance_type, q.operating_system, q.tenancy, q.include_gone, q.after
    )


def usd(amount: Decimal | None) -> str | None:
    """Exact, in plain digits without trailing zeros (DynamoDB and the files spell them
    differently)."""
    return None if amount is None else format(amount.normalize(), "f")


def view(p: Ec2Price) -> PriceRow:
    return {
        "instance_type": p.instance_type,
        "os": p.operating_system,
        "tenancy": p.tenancy,
        "license": p.license_model,
        "software": p.pre_installed_sw,
        "on_demand_hourly_usd": usd(p.on_demand_hourly_usd),
        "reserved": [
            {
                "lease": r.lease_length,
                "class": r.offering_class,
                "option": r.purchase_option,
                "upfront_usd": usd(r.upfront_usd),
                "hourly_usd": usd(r.hourly_usd),
            }
            for r in p.reserved
        ],
        "sku": p.sku,
        "version": p.offer_version,
        "gone": bool(p.gone),
    }
