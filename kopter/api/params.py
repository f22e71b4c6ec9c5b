"""Query parameters that several routes share, with the bounds that keep keys valid: every value
that becomes part of a DynamoDB key is printable ASCII and short enough to fit one."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

from fastapi import Query

from kopter import times
from kopter.api.errors import ApiError
from kopter.errors import Refused

KEY_TEXT = r"^[\x21-\x7e]+$"  # printable ASCII without spaces
ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")

Since = Annotated[
    str | None,
    Query(max_length=40, description="From this ISO date or time (UTC), inclusive."),
]
Until = Annotated[
    str | None,
    Query(max_length=40, description="Up to this ISO date or time (UTC), exclusive."),
]
Account = Annotated[str | None, Query(pattern=r"^\d{12}$", description="Only this AWS account id.")]
Limit = Annotated[int, Query(ge=1, le=1000, description="Items per page, at most.")]
Cursor = Annotated[
    str | None,
    Query(
        max_length=2048,
        description="The `next` token of the previous page, with the same filters.",
    ),
]


def iso_time(name: str, text: str) -> str:
    """An ISO date or time in CloudTrail's form (UTC, to the second), or a 400 naming ``name``."""
    try:
        moment = times.from_iso(text)
    except (Refused, OverflowError):
        moment = ""
    if not ISO_UTC.fullmatch(moment):  # also a year before 1000, which would not sort
        raise ApiError(400, f"{name}: {text!r} is not an ISO date or time")
    return moment


def utc(name: str, text: str) -> datetime:
    return times.parse(iso_time(name, text))
