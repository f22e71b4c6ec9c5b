"""``GET /v1/digests/{day}``: the tenant's daily audit digest of a UTC day (as `kopter digest`);
a 404 until the day's audit ran."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Path

from kopter.api.errors import ApiError, responses
from kopter.api.identity import Caller
from kopter.reads.digest import DigestRow, query, view

router = APIRouter(tags=["audit"])

Day = Annotated[str, Path(pattern=r"^\d{4}-\d\d-\d\d$", description="The day, an ISO date (UTC).")]


@router.get(
    "/v1/digests/{day}",
    response_model=DigestRow,
    responses=responses(400, 401, 404),
    summary="The daily audit digest of a day",
    description="Findings, denied and failed calls, counts of a UTC day: a 404 until the "
    "day's audit ran.",
)
def digest(tenant: Caller, day: Day) -> DigestRow:
    try:
        when = date.fromisoformat(day)
    except ValueError:
        raise ApiError(400, f"day: {day!r} is not an ISO date") from None
    stored = query(tenant, when)
    if stored is None:
        raise ApiError(404, f"no audit digest for {when}")
    return view(stored)
