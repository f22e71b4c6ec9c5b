"""Times as kopter stores and takes them: CloudTrail's form, UTC to the second with a ``Z``
(``2025-03-06T02:25:06Z``), which sorts as text, so keys and ranges built of it sort in time."""

from __future__ import annotations

from datetime import UTC, date, datetime

from kopter.errors import Refused

CLOUDTRAIL = "%Y-%m-%dT%H:%M:%SZ"


def stamp(moment: datetime) -> str:
    """``moment`` in CloudTrail's form (a naive time is taken as UTC)."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime(CLOUDTRAIL)


def day_start(day: date) -> str:
    """The midnight (UTC) that starts ``day``, in CloudTrail's form."""
    return stamp(datetime.combine(day, datetime.min.time(), UTC))


def parse(text: str) -> datetime:
    """A time in CloudTrail's form, as an aware UTC datetime; ValueError for anything else."""
    return datetime.strptime(text, CLOUDTRAIL).replace(tzinfo=UTC)


def from_iso(text: str) -> str:
    """An ISO date or time a person typed (the command line, the API's parameters), in
    CloudTrail's form: a date is its midnight, a time without a zone is UTC."""
    try:
        if len(text) == 10:
            return day_start(date.fromisoformat(text))
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        moment = moment.replace(tzinfo=moment.tzinfo or UTC).astimezone(UTC)
    except ValueError:
        raise Refused(f"{text!r} is not an ISO date or time (e.g. 2025-03-06T02:30:00Z)") from None
    return stamp(moment)
