"""One region's offer file as the prices kopter keeps: on-demand and reserved USD per instance
product, exact (Decimal), filtered and de-duplicated by stated rules.

Kept: products of family "Compute Instance" (and the 2018 files' "Compute Instance (bare
metal)"), capacitystatus "Used" (absent in the oldest files: taken as Used), marketoption
"OnDemand" where the attribute exists, and regionCode equal to the file's region where it exists
(a region's file also lists its Local Zones). A product is keyed by (instanceType,
operatingSystem, tenancy, licenseModel, preInstalledSw).

Duplicates, two SKUs for one key: the SKU with an on-demand price wins; between several, the
higher price (a cost graph should not under-state) and then the lower SKU. Each is logged and
counted.

A kept product with no price at all is counted, not stored.

Memory holds the kept products' keys and prices as short strings, not the file: a region's
catalog is tens of MB at most. Prices become Decimal only in the finished rows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import NamedTuple

import msgspec

from kopter.pricing.offerfile import (
    OFFERS,
    Offer,
    OfferFileError,
    OfferHeader,
    Products,
    Terms,
    read_offer,
)

log = logging.getLogger(__name__)

INSTANCE_FAMILIES = frozenset({"Compute Instance", "Compute Instance (bare metal)"})


class PriceKey(NamedTuple):
    instance_type: str
    operating_system: str
    tenancy: str
    license_model: str
    pre_installed_sw: str

    def __str__(self) -> str:
        return "#".join(self)

    @classmethod
    def parse(cls, text: str) -> PriceKey:
        return cls(*text.split("#"))


@dataclass(frozen=True)
class Reserved:
    lease_length: str  # "1yr", "3yr"
    offering_class: str  # "standard", "convertible"
    purchase_option: str  # "No Upfront", "Partial Upfront", "All Upfront"
    upfront_usd: Decimal
    hourly_usd: Decimal


@dataclass(frozen=True)
class PriceRow:
    key: PriceKey
    sku: str
    on_demand_hourly_usd: Decimal | None
    reserved: tuple[Reserved, ...]


@dataclass(frozen=True)
class Duplicate:
    key: PriceKey
    kept: str
    dropped: tuple[str, ...]


@dataclass
class Catalog:
    region: str
    version: str | None
    rows: dict[PriceKey, PriceRow]
    products: int = 0  # every product in the file
    unpriced: int = 0  # kept products with neither an on-demand nor a reserved price
    duplicates: list[Duplicate] = field(default_factory=list)


# (lease length, offering class, purchase option, upfront, hourly), as the file's strings.
_ReservedTerm = tuple[str, str, str, str, str]


def build_catalog(
    chunks: Iterable[bytes], region: str, progress: Callable[[int], None] | None = None
) -> Catalog:
    """Read an offer file for ``region``. ``progress`` is called with the products seen so far.
    Raises ``OfferFileError`` for a file that is not a whole offer file."""
    header = OfferHeader()
    key_of_sku: dict[str, PriceKey] = {}
    keys: dict[PriceKey, PriceKey] = {}  # one tuple per key, however many SKUs share it
    on_demand: dict[str, str] = {}
    reserved: dict[str, list[_ReservedTerm]] = {}
    products = 0
    for batch in read_offer(chunks, header):
        if isinstance(batch, Products):
            products += len(batch.entries)
            for sku, product in batch.entries.items():
                a = product.attributes
                if (
                    product.productFamily in INSTANCE_FAMILIES
                    and a.capacitystatus in ("Used", "")
                    and a.marketoption in ("OnDemand", "")
                    and a.regionCode in (region, "")
                    and a.instanceType
                ):
                    key = PriceKey(
                        a.instanceType,
                        a.operatingSystem,
                        a.tenancy,
                        a.licenseModel,
                        a.preInstalledSw or "NA",
                    )
                    key_of_sku[sku] = keys.setdefault(key, key)
            if progress:
                progress(products)
        elif isinstance(batch, Terms) and batch.kind == "OnDemand":
            for sku, raw in batch.entries.items():
                if sku in key_of_sku:
                    price = _on_demand(_offers(sku, raw))
                    if price is not None:
                        on_demand[sku] = price
        elif isinstance(batch, Terms) and batch.kind == "Reserved":
            for sku, raw in batch.entries.items():
                if sku in key_of_sku:
                    reserved[sku] = _reserved(_offers(sku, raw))
    catalog = Catalog(region, header.version, {}, products)
    skus_of_key: dict[PriceKey, list[str]] = {}
    for sku, key in key_of_sku.items():
        skus_of_key.setdefault(key, []).append(sku)
    for key, skus in skus_of_key.items():
        sku = _winner(skus, on_demand)
        if len(skus) > 1:
            dropped = tuple(sorted(s for s in skus if s != sku))
            catalog.duplicates.append(Duplicate(key, sku, dropped))
            log.info(
                "price list %s: %d products for %s; kept %s (%s), dropped %s",
                region,
                len(skus),
                key,
                sku,
                on_demand.get(sku),
                ", ".join(f"{s} ({on_demand.get(s)})" for s in dropped),
            )
        if sku not in on_demand and not reserved.get(sku):
            catalog.unpriced += 1
            continue
        catalog.rows[key] = PriceRow(
            key,
            sku,
            _decimal(on_demand[sku]) if sku in on_demand else None,
            tuple(
                Reserved(lease, klass, option, _decimal(upfront), _decimal(hourly))
                for lease, klass, option, upfront, hourly in sorted(reserved.get(sku, ()))
            ),
        )
    return catalog


def _winner(skus: list[str], on_demand: dict[str, str]) -> str:
    if len(skus) == 1:
        return skus[0]
    priced = [s for s in skus if s in on_demand] or skus
    return min(priced, key=lambda s: (-_decimal(on_demand.get(s, "0")), s))


def _offers(sku: str, raw: msgspec.Raw) -> Iterable[Offer]:
    try:
        return OFFERS.decode(raw).values()
    except msgspec.ValidationError as e:
        raise OfferFileError(f"not an offer file: the terms of SKU {sku}: {e}") from None


def _on_demand(offers: Iterable[Offer]) -> str | None:
    for offer in offers:
        for dimension in offer.priceDimensions.values():
            if dimension.unit == "Hrs" and dimension.pricePerUnit.USD is not None:
                return str(dimension.pricePerUnit.USD)
    return None


def _reserved(offers: Iterable[Offer]) -> list[_ReservedTerm]:
    terms = []
    for offer in offers:
        attributes = offer.termAttributes
        upfront, hourly = "0", None
        for dimension in offer.priceDimensions.values():
            if dimension.unit == "Quantity":
                upfront = dimension.pricePerUnit.USD or "0"
            elif dimension.unit == "Hrs":
                hourly = dimension.pricePerUnit.USD
        if hourly is not None and attributes.LeaseContractLength:
            terms.append(
                (
                    attributes.LeaseContractLength,
                    attributes.OfferingClass,
                    attributes.PurchaseOption,
                    upfront,
                    hourly,
                )
            )
    return terms


def _decimal(text: str) -> Decimal:
    try:
        return Decimal(text)
    except InvalidOperation:
        raise OfferFileError(f"not a price: {text!r}") from None
