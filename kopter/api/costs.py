"""``GET /v1/price-graph``: the tenant's EC2 cost per hour (USD), oldest first, summed or split
by account, region or instance type (as `kopter graph`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from kopter.api.errors import ApiError, responses
from kopter.api.identity import Caller
from kopter.api.params import utc
from kopter.reads.costs import By, CostQuery, CostRow, query, view

router = APIRouter(tags=["costs"])
MAX_RANGE = timedelta(days=31)  # one request reads at most a month of hourly points


class PriceGraph(BaseModel):
    since: datetime
    until: datetime
    by: str | None = None
    items: list[CostRow]


@router.get(
    "/v1/price-graph",
    response_model=PriceGraph,
    response_model_exclude_none=True,
    responses=responses(400, 401),
    summary="EC2 cost per hour, oldest first",
    description="In USD as exact decimal strings, with `missing_prices` (how many running "
    "instances had no price, so are not in `cost_usd`) when there were any; at most 31 days "
    "(default: the last 24 hours).",
)
def price_graph(
    tenant: Caller,
    since: Annotated[
        str | None, Query(max_length=40, description="ISO date or time (default: a day ago).")
    ] = None,
    until: Annotated[
        str | None, Query(max_length=40, description="ISO date or time (default: now).")
    ] = None,
    by: Annotated[
        By | None,
        Query(description="Split each hour by account, region or instance type."),
    ] = None,
) -> dict[str, Any]:
    end = utc("until", until) if until else datetime.now(UTC)
    start = utc("since", since) if since else end - timedelta(hours=24)
    if start > end:
        raise ApiError(400, "since: after until")
    if end - start > MAX_RANGE:
        raise ApiError(400, f"since: at most {MAX_RANGE.days} days before until")
    items = [view(c) for c in query(CostQuery(tenant, start, end, by))]
    return {"since": start, "until": end, "by": by, "items": items}
