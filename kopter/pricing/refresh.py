"""Keeping the EC2 price list current: which regions' files changed, and importing one.

An hour with no change costs one conditional request (the region index, If-None-Match) and no
table write. The index names each region's current file with its version in the path; a region
whose version matches the one stored in Global is not downloaded. A changed version is fetched
with If-None-Match too, and streamed into the catalog; nothing is written until the whole file
has been read, so a truncated or malformed file leaves the stored prices as they were.

Global keeps ``pricing#index`` (the index's ETag and every region's current file) and
``pricing#region#<region>`` (the imported version, its ETag and what the import did).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from pynamodb.exceptions import DoesNotExist

from kopter import accounts
from kopter.pricing.cache import PriceCache
from kopter.pricing.catalog import Catalog, build_catalog
from kopter.pricing.offerfile import OfferFileError
from kopter.pricing.source import Download, HttpSource, PriceListUnavailable, RegionOffer
from kopter.pricing.store import PriceTable, store
from kopter.settings import Settings
from kopter.tables import GlobalItem

log = logging.getLogger(__name__)

INDEX_KEY = "pricing#index"


def pricing_regions(settings: Settings) -> list[str]:
    """Every region an account is registered in, and the configured ones."""
    regions = set(settings.pricing_regions)
    for account in accounts.all_accounts():
        regions.update(account.regions)
    return sorted(regions)


@dataclass
class Plan:
    due: list[RegionOffer] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    not_offered: list[str] = field(default_factory=list)  # not in the price list's index


def plan(source: HttpSource, regions: Iterable[str]) -> Plan:
    state = _state(INDEX_KEY)
    known = state.get("offers") or {}
    offers, etag = source.region_index(state.get("etag") if known else None)
    if offers is None:
        offers = {r: RegionOffer(r, url, version) for r, (url, version) in known.items()}
    else:
        _save(
            INDEX_KEY, {"etag": etag, "offers": {r: [o.url, o.version] for r, o in offers.items()}}
        )
    result = Plan()
    for region in regions:
        offer = offers.get(region)
        if offer is None:
            result.not_offered.append(region)
        elif _state(GlobalItem.price_region_key(region)).get("version") == offer.version:
            result.unchanged.append(region)
        else:
            result.due.append(offer)
    return result


@dataclass
class RegionImport:
    region: str
    version: str
    status: str  # "imported", "not-modified", "failed"
    rows: int = 0
    written: int = 0
    unchanged: int = 0
    gone: int = 0
    products: int = 0
    duplicates: int = 0
    unpriced: int = 0
    megabytes: float = 0.0
    seconds: float = 0.0
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def import_offer(
    open_offer: Callable[[], Download],
    region: str | None,
    version: str | None,
    table: PriceTable,
    cache: PriceCache | None,
    progress: Callable[[int, int | None], None] | None = None,
) -> RegionImport:
    """Read a region's file whole, then write what changed. A file that cannot be read whole, or
    holds no instance prices at all, changes nothing and says why. ``version`` is the index's
    (None: the file's own). ``region`` None: the one region the file's products name (a file
    naming several, or none, raises ``RegionNotNamed``)."""
    started = time.perf_counter()
    result = RegionImport(region or "", version or "", "failed")
    read = 0
    etag = None

    def counted(chunks: Iterable[bytes], size: int | None) -> Iterable[bytes]:
        nonlocal read
        for chunk in chunks:
            read += len(chunk)
            if progress:
                progress(read, size)
            yield chunk

    try:
        download = open_offer()
        etag = download.etag
        if download.not_modified:
            result.status = "not-modified"
        else:
            catalog = build_catalog(
                counted(download.chunks, download.size), region, source=download.url
            )
            result.region = catalog.region
            _refuse_empty(catalog, download.url)
            result.version = version or catalog.version or "unknown"
            now = datetime.now(UTC)
            stored = store(catalog, table, result.version, now)
            if cache is not None:
                cache.replace(
                    catalog.region,
                    (
                        (str(key), kept.on_demand_usd)
                        for key, kept in catalog.kept.items()
                        if kept.on_demand_usd is not None
                    ),
                )
            result.status = "imported"
            result.rows = len(catalog)
            result.written, result.unchanged, result.gone = (
                stored.written,
                stored.unchanged,
                stored.gone,
            )
            result.products, result.duplicates = catalog.products, len(catalog.duplicates)
            result.unpriced = catalog.unpriced
    except (OfferFileError, PriceListUnavailable) as e:
        kept = f"the stored prices of {result.region} are" if result.region else "stored prices"
        result.error = f"{e}; {kept} unchanged"
        log.error("price list %s (version %s): %s", result.region, version, result.error)
    result.megabytes = round(read / 1e6, 1)
    result.seconds = round(time.perf_counter() - started, 2)
    if result.region:  # a file that failed before it named its region has nowhere to be kept
        record(result, etag)
    return result


def import_region(
    offer: RegionOffer,
    source: HttpSource,
    table: PriceTable,
    cache: PriceCache | None,
    progress: Callable[[int, int | None], None] | None = None,
) -> RegionImport:
    """Import a region the plan found due. A version already imported is not read again (a
    redelivered task); a file unchanged since the last import is not downloaded (its ETag)."""
    state = stored_state(offer.region)
    if state.get("version") == offer.version:
        return RegionImport(offer.region, offer.version, "unchanged")
    etag = state.get("etag")
    return import_offer(
        lambda: source.download(offer.url, etag),
        offer.region,
        offer.version,
        table,
        cache,
        progress,
    )


def _refuse_empty(catalog: Catalog, url: str) -> None:
    if not catalog.kept:
        raise OfferFileError(
            f"{url} has {catalog.products} products and no instance price for {catalog.region}"
        )


def record(result: RegionImport, etag: str | None) -> None:
    """Keep what the import did; the version only once it is in the table."""
    state = _state(GlobalItem.price_region_key(result.region))
    now = datetime.now(UTC).isoformat()
    if result.status == "failed":
        state["last_failure"] = {"at": now, "version": result.version, "error": result.error}
    else:
        state.update(version=result.version, etag=etag, checked_at=now)
        if result.status == "imported":
            state["last_import"] = {"at": now, **result.as_dict()}
    _save(GlobalItem.price_region_key(result.region), state)


def stored_state(region: str) -> dict[str, Any]:
    return _state(GlobalItem.price_region_key(region))


def _state(key: str) -> dict[str, Any]:
    try:
        value = GlobalItem.get(key).value
    except DoesNotExist:
        return {}
    return value if isinstance(value, dict) else {}


def _save(key: str, value: dict[str, Any]) -> None:
    GlobalItem(key, value=value, updated_at=datetime.now(UTC)).save()
