"""A region's catalog written to Ec2Prices: only the rows whose prices changed, and rows of
products that left the price list marked gone (kept, so that an old cost can still be explained).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from kopter import dynamo
from kopter.pricing.catalog import Catalog, PriceRow
from kopter.settings import Settings
from kopter.tables import Ec2Price, ReservedPrice

# What decides whether a stored row must be written again: its SKU, its prices (compared as
# numbers: DynamoDB gives back "0.042" for the file's "0.0420000000") and whether it is gone.
Fingerprint = tuple[Any, ...]


class PriceTable(Protocol):
    def fingerprints(self, region: str) -> dict[str, Fingerprint]: ...

    def put(self, rows: Iterable[Ec2Price]) -> int: ...

    def mark_gone(self, region: str, price_keys: list[str], version: str, now: datetime) -> int: ...


@dataclass(frozen=True)
class Stored:
    written: int
    unchanged: int
    gone: int


def store(catalog: Catalog, table: PriceTable, version: str, now: datetime) -> Stored:
    stored = table.fingerprints(catalog.region)
    changed = 0

    def rows_to_write() -> Iterator[Ec2Price]:
        nonlocal changed
        for key, row in catalog.rows.items():
            price_key = str(key)
            if stored.pop(price_key, None) != fingerprint(row):
                changed += 1
                yield to_item(catalog.region, row, version, now)

    written = table.put(rows_to_write())
    gone = [k for k, f in stored.items() if not f[-1]]
    table.mark_gone(catalog.region, gone, version, now)
    return Stored(written, len(catalog.rows) - changed, len(gone))


def fingerprint(row: PriceRow) -> Fingerprint:
    return (
        row.sku,
        row.on_demand_hourly_usd,
        tuple(
            sorted(
                (r.lease_length, r.offering_class, r.purchase_option, r.upfront_usd, r.hourly_usd)
                for r in row.reserved
            )
        ),
        False,
    )


def stored_fingerprint(item: Ec2Price) -> Fingerprint:
    return (
        item.sku,
        item.on_demand_hourly_usd,
        tuple(
            sorted(
                (r.lease_length, r.offering_class, r.purchase_option, r.upfront_usd, r.hourly_usd)
                for r in item.reserved
            )
        ),
        bool(item.gone),
    )


def to_item(region: str, row: PriceRow, version: str, now: datetime) -> Ec2Price:
    key = row.key
    return Ec2Price(
        region,
        str(key),
        instance_type=key.instance_type,
        operating_system=key.operating_system,
        tenancy=key.tenancy,
        license_model=key.license_model,
        pre_installed_sw=key.pre_installed_sw,
        sku=row.sku,
        on_demand_hourly_usd=row.on_demand_hourly_usd,
        reserved=[
            ReservedPrice(
                lease_length=r.lease_length,
                offering_class=r.offering_class,
                purchase_option=r.purchase_option,
                upfront_usd=r.upfront_usd,
                hourly_usd=r.hourly_usd,
            )
            for r in row.reserved
        ],
        offer_version=version,
        gone=False,
        updated_at=now,
    )


class DynamoPriceTable:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def fingerprints(self, region: str) -> dict[str, Fingerprint]:
        return {item.price_key: stored_fingerprint(item) for item in Ec2Price.query(region)}

    def put(self, rows: Iterable[Ec2Price]) -> int:
        return dynamo.batch_put(
            Ec2Price.Meta.table_name, (row.serialize() for row in rows), self.settings
        )

    def mark_gone(self, region: str, price_keys: list[str], version: str, now: datetime) -> int:
        for price_key in price_keys:
            Ec2Price(region, price_key).update(
                actions=[
                    Ec2Price.gone.set(True),
                    Ec2Price.offer_version.set(version),
                    Ec2Price.updated_at.set(now),
                ]
            )
        return len(price_keys)


def on_demand_prices(region: str) -> Iterator[tuple[str, Decimal]]:
    """Every on-demand price stored for ``region`` that is not gone: the cache's source."""
    for item in Ec2Price.query(
        region, attributes_to_get=["price_key", "on_demand_hourly_usd", "gone"]
    ):
        if item.on_demand_hourly_usd is not None and not item.gone:
            yield item.price_key, item.on_demand_hourly_usd


def find_prices(
    region: str,
    instance_type: str | None = None,
    operating_system: str | None = None,
    tenancy: str | None = None,
    include_gone: bool = False,
) -> Iterator[Ec2Price]:
    condition = Ec2Price.price_key.startswith(f"{instance_type}#") if instance_type else None
    for item in Ec2Price.query(region, condition):
        if operating_system and item.operating_system.lower() != operating_system.lower():
            continue
        if tenancy and item.tenancy.lower() != tenancy.lower():
            continue
        if item.gone and not include_gone:
            continue
        yield item
