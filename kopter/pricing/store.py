"""A region's catalog written to Ec2Prices: only the rows whose prices changed, and rows of
products that left the price list marked gone (kept, so that an old cost can still be explained).

Whether a row changed is decided by a digest of what the file said about the product, stored
with the row: the comparison reads two short attributes per stored row and converts no price.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from kopter import dynamo
from kopter.pricing.catalog import Catalog, Kept, PriceKey
from kopter.settings import Settings
from kopter.tables import Ec2Price

Item = dict[str, Any]  # DynamoDB's attribute-value form


class PriceTable(Protocol):
    def digests(self, region: str) -> dict[str, tuple[str | None, bool]]:
        """price_key -> (digest, gone) of every stored row of the region."""
        ...

    def put(self, items: Iterable[Item]) -> int: ...

    def mark_gone(self, region: str, price_keys: list[str], version: str, now: datetime) -> int: ...


@dataclass(frozen=True)
class Stored:
    written: int
    unchanged: int
    gone: int


def store(catalog: Catalog, table: PriceTable, version: str, now: datetime) -> Stored:
    stored = table.digests(catalog.region)
    updated_at = Ec2Price.updated_at.serialize(now)

    def changed() -> Iterator[Item]:
        for key, kept in catalog.kept.items():
            digest = kept.digest()
            if stored.pop(str(key), None) != (digest, False):
                yield to_item(catalog.region, key, kept, digest, version, updated_at)

    written = table.put(changed())
    gone = [price_key for price_key, (_, is_gone) in stored.items() if not is_gone]
    table.mark_gone(catalog.region, gone, version, now)
    return Stored(written, len(catalog) - written, len(gone))


def to_item(
    region: str, key: PriceKey, kept: Kept, digest: str, version: str, updated_at: str
) -> Item:
    """The row as PynamoDB would serialize ``Ec2Price`` (a test holds the two equal), built
    directly: an import writes tens of thousands, and the model's serializer is the slow part."""
    item: Item = {
        "region": {"S": region},
        "price_key": {"S": str(key)},
        "instance_type": {"S": key.instance_type},
        "operating_system": {"S": key.operating_system},
        "tenancy": {"S": key.tenancy},
        "license_model": {"S": key.license_model},
        "pre_installed_sw": {"S": key.pre_installed_sw},
        "sku": {"S": kept.sku},
        "reserved": {"L": [_reserved_item(term) for term in kept.reserved.split(";") if term]},
        "offer_version": {"S": version},
        "gone": {"BOOL": False},
        "updated_at": {"S": updated_at},
        "digest": {"S": digest},
    }
    if kept.on_demand_usd is not None:
        item["on_demand_hourly_usd"] = {"N": kept.on_demand_usd}
    return item


def _reserved_item(packed: str) -> Item:
    lease, klass, option, upfront, hourly = packed.split("|")
    return {
        "M": {
            "lease_length": {"S": lease},
            "offering_class": {"S": klass},
            "purchase_option": {"S": option},
            "upfront_usd": {"N": upfront},
            "hourly_usd": {"N": hourly},
        }
    }


class DynamoPriceTable:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def digests(self, region: str) -> dict[str, tuple[str | None, bool]]:
        return {
            item.price_key: (item.digest, bool(item.gone))
            for item in Ec2Price.query(region, attributes_to_get=["price_key", "digest", "gone"])
        }

    def put(self, items: Iterable[Item]) -> int:
        return dynamo.batch_put(Ec2Price.Meta.table_name, items, self.settings)

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
    after: str | None = None,
) -> Iterator[Ec2Price]:
    """The region's prices in key order, from the one after the price key ``after``."""
    condition = (
        Ec2Price.price_key.startswith(Ec2Price.type_prefix(instance_type))
        if instance_type
        else None
    )
    start = {"region": {"S": region}, "price_key": {"S": after}} if after else None
    for item in Ec2Price.query(region, condition, last_evaluated_key=start):
        if operating_system and item.operating_system.lower() != operating_system.lower():
            continue
        if tenancy and item.tenancy.lower() != tenancy.lower():
            continue
        if item.gone and not include_gone:
            continue
        yield item
