"""Times as a person types them into a search of the audit log (and the other listings)."""

from __future__ import annotations

from datetime import UTC, date, datetime

from kopter.errors import Refused


def cloudtrail_time(text: str) -> str:
    """An ISO date or time, in CloudTrail's form (UTC, to the second, ``Z``)."""
    try:
        if len(text) == 10:
            moment = datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC)
        else:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
            moment = moment.replace(tzinfo=moment.tzinfo or UTC).astimezone(UTC)
    except ValueError:
        raise Refused(f"{text!r} is not an ISO date or time (e.g. 2025-03-06T02:30:00Z)") from None
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
