"""One region's offer file as the prices kopter keeps: on-demand and reserved USD per instance
product, exact, filtered and de-duplicated by stated rules.

Kept: products of family "Compute Instance" (and the 2018 files' "Compute Instance (bare
metal)"), capacitystatus "Used" (absent in the oldest files: taken as Used), marketoption
"OnDemand" where the attribute exists, and regionCode equal to the file's region where it exists
(a region's file also lists its Local Zones). A product is keyed by (instanceType,
operatingSystem, tenancy, licenseModel, preInstalledSw).

Duplicates, two SKUs for one key: the SKU with an on-demand price wins; between several, the
higher price (a cost graph should not under-state) and then the lower SKU. Each is logged and
counted. A kept product with no price at all is counted, not stored.

Prices stay the file's own decimal strings (exact, and what DynamoDB is sent) until a reader asks
for a ``PriceRow``, which carries Decimals, never floats. Memory holds a few short strings per
kept product, not the file: a 300 MB file's catalog is a few tens of MB.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Iterable, Iterator
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
from kopter.pricing.regions import region_of, the_region

log = logging.getLogger(__name__)

INSTANCE_FAMILIES = frozenset({"Compute Instance", "Compute Instance (bare metal)"})
# Prices are written to DynamoDB as the file spells them, so they are checked first: a plain
# non-negative decimal in ASCII digits (\d would take full-width ones, which DynamoDB refuses),
# 38 at most (DynamoDB's precision). Reserved terms are packed
# "lease|class|option|upfront|hourly;…".
_NUMBER = r"[0-9]{1,19}(?:\.[0-9]{1,19})?"
_PRICE = re.compile(_NUMBER)
_TERM = rf"[^|;]+\|[^|;]+\|[^|;]+\|{_NUMBER}\|{_NUMBER}"
_PACKED_TERMS = re.compile(rf"(?:{_TERM}(?:;{_TERM})*)?")


class PriceKey(NamedTuple):
    instance_type: str
    operating_system: str
    tenancy: str
    license_model: str
    pre_installed_sw: str

    def __str__(self) -> str:
        return "#".join(self)


class ReservedTerm(NamedTuple):
    lease_length: str  # "1yr", "3yr"
    offering_class: str  # "standard", "convertible"
    purchase_option: str  # "No Upfront", "Partial Upfront", "All Upfront"
    upfront_usd: str  # the file's decimal strings
    hourly_usd: str


class Reserved(NamedTuple):
    lease_length: str
    offering_class: str
    purchase_option: str
    upfront_usd: Decimal
    hourly_usd: Decimal


class Kept(NamedTuple):
    """A product's prices as the file wrote them; ``reserved`` packs its terms in one string."""

    sku: str
    on_demand_usd: str | None
    reserved: str  # "lease|class|option|upfront|hourly;…", sorted

    def reserved_terms(self) -> list[ReservedTerm]:
        return [ReservedTerm(*t.split("|")) for t in self.reserved.split(";") if t]

    def digest(self) -> str:
        """Changes when, and only when, anything kopter stores of the product changes."""
        text = f"{self.sku}\0{self.on_demand_usd}\0{self.reserved}"
        return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


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
    kept: dict[PriceKey, Kept]
    products: int = 0  # every product in the file
    unpriced: int = 0  # kept products with neither an on-demand nor a reserved price
    duplicates: list[Duplicate] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.kept)

    def row(self, key: PriceKey) -> PriceRow:
        kept = self.kept[key]
        return PriceRow(
            key,
            kept.sku,
            _decimal(kept.on_demand_usd) if kept.on_demand_usd is not None else None,
            tuple(
                Reserved(t[0], t[1], t[2], _decimal(t[3]), _decimal(t[4]))
                for t in kept.reserved_terms()
            ),
        )

    def rows(self) -> Iterator[PriceRow]:
        return (self.row(key) for key in self.kept)


def build_catalog(
    chunks: Iterable[bytes],
    region: str | None,
    progress: Callable[[int], None] | None = None,
    source: str = "the offer file",
) -> Catalog:
    """Read an offer file for ``region`` (None: the one region its products name, else
    ``RegionNotNamed``). ``progress`` is called with the products seen so far. Raises
    ``OfferFileError`` for a file that is not a whole offer file."""
    header = OfferHeader()
    key_of_sku: dict[str, PriceKey] = {}
    keys: dict[PriceKey, PriceKey] = {}  # one tuple per key, however many SKUs share it
    on_demand: dict[str, str] = {}
    reserved: dict[str, str] = {}
    products = 0
    # With no region given, the products of every zone are read, their codes kept, and the
    # other regions' dropped once the file has named its region.
    named: set[str] = set()
    zone_of_sku: dict[str, str] = {}
    for batch in read_offer(chunks, header):
        if isinstance(batch, Products):
            products += len(batch.entries)
            for sku, product in batch.entries.items():
                a = product.attributes
                if region is None:
                    named.add(region_of(a.regionCode, a.location) or "")
                if (
                    product.productFamily in INSTANCE_FAMILIES
                    and a.capacitystatus in ("Used", "")
                    and a.marketoption in ("OnDemand", "")
                    and (region is None or a.regionCode in (region, ""))
                    and a.instanceType
                ):
                    if region is None:
                        zone_of_sku[sku] = a.regionCode
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
                    price = _on_demand(sku, _offers(sku, raw))
                    if price is not None:
                        on_demand[sku] = price
        elif isinstance(batch, Terms) and batch.kind == "Reserved":
            for sku, raw in batch.entries.items():
                if sku in key_of_sku:
                    reserved[sku] = _reserved(sku, _offers(sku, raw))
    if region is None:
        named.discard("")
        region = the_region(named, source)
        for sku, zone in zone_of_sku.items():
            if zone not in (region, ""):
                del key_of_sku[sku]
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
        catalog.kept[key] = Kept(sku, on_demand.get(sku), reserved.get(sku, ""))
    return catalog


def _winner(skus: list[str], on_demand: dict[str, str]) -> str:
    if len(skus) == 1:
        return skus[0]
    priced = [s for s in skus if s in on_demand] or skus
    return min(priced, key=lambda s: (-_decimal(on_demand.get(s, "0")), s))


def _offers(sku: str, raw: msgspec.Raw) -> Iterable[Offer]:
    try:
        return OFFERS.decode(raw).values()
    except (msgspec.ValidationError, UnicodeDecodeError) as e:  # msgspec's error for non-UTF-8
        raise OfferFileError(f"not an offer file: the terms of SKU {sku}: {e}") from None


def _on_demand(sku: str, offers: Iterable[Offer]) -> str | None:
    for offer in offers:
        for dimension in offer.priceDimensions.values():
            if dimension.unit == "Hrs" and dimension.pricePerUnit.USD is not None:
                return _number(sku, dimension.pricePerUnit.USD)
    return None


def _reserved(sku: str, offers: Iterable[Offer]) -> str:
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
                f"{attributes.LeaseContractLength}|{attributes.OfferingClass}|"
                f"{attributes.PurchaseOption}|{upfront}|{hourly}"
            )
    terms.sort()
    packed = ";".join(terms)
    if not _PACKED_TERMS.fullmatch(packed):
        raise OfferFileError(f"SKU {sku}: reserved terms without plain prices: {packed[:200]!r}")
    return packed


def _number(sku: str, text: str) -> str:
    """The file's price string, if it is a plain non-negative decimal (as DynamoDB takes it)."""
    if not _PRICE.fullmatch(text):
        raise OfferFileError(f"SKU {sku}: not a price: {text[:80]!r}")
    return text


def _decimal(text: str) -> Decimal:
    try:
        return Decimal(text)
    except InvalidOperation:
        raise OfferFileError(f"not a price: {text!r}") from None
