"""``GET /v1/prices``: the stored EC2 prices of a region (as `kopter prices --json`), in price-key
order, with a ``next`` cursor. Prices are no tenant's, but only a signed-in tenant reads them."""

from __future__ import annotations

from itertools import islice
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from kopter.api.cursors import Pager, Scope
from kopter.api.errors import responses
from kopter.api.identity import Caller
from kopter.api.params import Cursor, Limit
from kopter.reads.prices import PriceQuery, PriceRow, query, view

router = APIRouter(tags=["prices"])

Region = Annotated[
    str, Query(pattern=r"^[a-z0-9-]+$", max_length=32, description="An AWS region: us-east-1.")
]
InstanceType = Annotated[
    str | None,
    Query(pattern=r"^[a-z0-9.-]+$", max_length=64, description="Only this one: m5.large."),
]
Os = Annotated[
    str | None, Query(max_length=100, description="Only this OS (any case): Linux, Windows, …")
]
Tenancy = Annotated[
    str | None, Query(max_length=100, description="Only this tenancy (any case): Shared, …")
]
Gone = Annotated[bool, Query(description="Also products no longer offered.")]


class PricesPage(BaseModel):
    items: list[PriceRow]
    next: str | None


@router.get(
    "/v1/prices",
    response_model=PricesPage,
    responses=responses(400, 401),
    summary="The EC2 prices of a region (USD, exact)",
    description="No tenant's, but for signed-in tenants only: USD as exact decimal strings, "
    "with the reserved terms, in price-key order.",
)
def prices(
    tenant: Caller,
    cursors: Pager,
    region: Region,
    instance_type: InstanceType = None,
    os: Os = None,
    tenancy: Tenancy = None,
    gone: Gone = False,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> dict[str, Any]:
    filters = {"instance_type": instance_type, "os": os, "tenancy": tenancy, "gone": gone}
    scope = Scope(
        tenant,
        "prices",
        {"region": region, **filters},
        {"region": region},
        frozenset({"price_key"}),
    )
    after = cursors.decode(scope, cursor)["price_key"]["S"] if cursor else None
    found = list(
        islice(query(PriceQuery(region, instance_type, os, tenancy, gone, after)), limit + 1)
    )
    page = found[:limit]
    key = (
        {"region": {"S": region}, "price_key": {"S": page[-1].price_key}} if found[limit:] else None
    )
    return {
        "items": [view(p) for p in page],
        "next": cursors.encode(scope, key) if key else None,
    }
