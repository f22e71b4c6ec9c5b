"""The `pricing` queue: the EC2 price list, one task per region whose file changed."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from celery import group

from kopter import cache
from kopter.pricing import refresh
from kopter.pricing.cache import PriceCache
from kopter.pricing.source import HttpSource, RegionOffer
from kopter.pricing.store import DynamoPriceTable
from kopter.settings import get_settings
from tasks.app import app


@dataclass(frozen=True)
class PricingRun:
    """What ``refresh_price_list`` returns; ``group`` is the imports, when there are any."""

    importing: list[str]
    unchanged: list[str]
    not_offered: list[str]
    group: str | None = None


def summarize(run: PricingRun, imports: list[refresh.RegionImport]) -> dict[str, Any]:
    """Every region's import (`kopter run pricing --wait`), and how many failed."""
    return {
        "importing": run.importing,
        "unchanged": run.unchanged,
        "not_offered": run.not_offered,
        "imports": [asdict(i) for i in imports],
        "failed": sum(i.status == "failed" for i in imports),
    }


@app.task
def refresh_price_list() -> dict[str, Any]:
    """Find the regions whose offer file changed since the last import and import each."""
    settings = get_settings()
    plan = refresh.plan(HttpSource.from_settings(settings), refresh.pricing_regions(settings))
    run_id = None
    if plan.due:
        run = group(import_region_prices.s(o.region, o.url, o.version) for o in plan.due)()
        run.save()  # so that `kopter run pricing --wait` can follow the imports
        run_id = run.id
    due = [o.region for o in plan.due]
    return asdict(PricingRun(due, plan.unchanged, plan.not_offered, run_id))


@app.task
def import_region_prices(region: str, url: str, version: str) -> dict[str, Any]:
    """Import one region's offer file. Long imports are safe: the worker keeps renewing this
    message's visibility (tasks.visibility), so no other worker starts the same import."""
    settings = get_settings()
    result = refresh.import_region(
        RegionOffer(region, url, version),
        HttpSource.from_settings(settings),
        DynamoPriceTable(settings),
        PriceCache(cache.client(settings), settings.prefix),
    )
    return asdict(result)
