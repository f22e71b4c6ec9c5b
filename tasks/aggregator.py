"""The `aggregator` queue: the hourly cost graph, one task per tenant."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from celery import group

from kopter import accounts, cache
from kopter.costs.aggregator import aggregate_hour, hour_start
from kopter.pricing.cache import PriceCache
from kopter.settings import get_settings
from tasks.app import app
from tasks.notifications import raise_notification


@dataclass(frozen=True)
class AggregateRun:
    """What ``aggregate_last_hour`` returns; ``group`` is the tenants' tasks, when any."""

    hour: str
    tenants: int
    group: str | None = None


def summarize(run: AggregateRun, tenants: list[dict[str, Any]]) -> dict[str, Any]:
    """The hour and each tenant's costs (kopter.costs.aggregator.TenantHour's summary)."""
    return {"hour": run.hour, "tenants": run.tenants, "results": tenants}


@app.task
def aggregate_last_hour(tenant_id: str | None = None, hour: str | None = None) -> dict[str, Any]:
    """Cost points of the hour just ended (or ``hour``) for every tenant (or one). Triggered by
    the describer run's end and by beat at :40; recomputing an hour changes nothing."""
    hour = hour or (hour_start(datetime.now(UTC)) - timedelta(hours=1)).isoformat()
    tenants = [tenant_id] if tenant_id else [t.tenant_id for t in accounts.list_tenants()]
    run_id = None
    if tenants:
        run = group(aggregate_tenant_hour.s(t, hour) for t in tenants)()
        run.save()  # so that `kopter run aggregator --wait` can follow it
        run_id = run.id
    return asdict(AggregateRun(hour, len(tenants), run_id))


@app.task
def aggregate_tenant_hour(tenant_id: str, hour: str) -> dict[str, Any]:
    settings = get_settings()
    prices = PriceCache(cache.client(settings), settings.prefix)
    result = aggregate_hour(tenant_id, datetime.fromisoformat(hour), prices.on_demand, settings)
    for notice in result.notices:
        raise_notification(notice)
    return result.summary()
