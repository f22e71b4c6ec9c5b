"""The `pricing` queue: the EC2 price list, one task per region whose file changed."""

from __future__ import annotations

from typing import Any

from celery import group

from kopter import cache
from kopter.pricing import refresh
from kopter.pricing.cache import PriceCache
from kopter.pricing.source import HttpSource
from kopter.pricing.store import DynamoPriceTable
from kopter.settings import get_settings
from tasks.app import app


@app.task
def refresh_price_list() -> dict[str, Any]:
    """Find the regions whose offer file changed since the last import and import each."""
    settings = get_settings()
    plan = refresh.plan(HttpSource.from_settings(settings), refresh.pricing_regions(settings))
    summary: dict[str, Any] = {
        "importing": [o.region for o in plan.due],
        "unchanged": plan.unchanged,
        "not_offered": plan.not_offered,
    }
    if plan.due:
        run = group(import_region_prices.s(o.region, o.url, o.version) for o in plan.due)()
        run.save()  # so that `kopter run pricing --wait` can follow the imports
        summary["group"] = run.id
    return summary


@app.task
def import_region_prices(region: str, url: str, version: str) -> dict[str, Any]:
    """Import one region's offer file. Long imports are safe: the worker keeps renewing this
    message's visibility (tasks.visibility), so no other worker starts the same import."""
    settings = get_settings()
    state = refresh.stored_state(region)
    if state.get("version") == version:  # a redelivery of an import that finished
        return {"region": region, "version": version, "status": "unchanged"}
    source = HttpSource.from_settings(settings)
    result = refresh.import_offer(
        lambda: source.download(url, state.get("etag")),
        region,
        version,
        DynamoPriceTable(settings),
        PriceCache(cache.client(settings), settings.prefix),
    )
    return result.as_dict()
