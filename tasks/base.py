"""The base class of every kopter task."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from celery import Task

from kopter.settings import get_settings


class CountdownTooLong(ValueError):
    pass


class KopterTask(Task):  # type: ignore[misc]
    def apply_async(self, args: Any = None, kwargs: Any = None, **options: Any) -> Any:
        _check_delay(options)
        return super().apply_async(args, kwargs, **options)


def _check_delay(options: dict[str, Any]) -> None:
    """Refuse a countdown or ETA longer than SQS's 15-minute maximum delay.

    The SQS transport keeps a delayed task as an unacknowledged message inside the worker until
    it is due; longer waits belong to beat, not to a message held for hours.
    """
    delay = options.get("countdown")
    eta = options.get("eta")
    if eta is not None:
        when = eta if eta.tzinfo else eta.replace(tzinfo=UTC)
        delay = (when - datetime.now(UTC)).total_seconds()
    limit = get_settings().max_countdown
    if delay is not None and delay > limit:
        raise CountdownTooLong(
            f"a delay of {delay:.0f}s is longer than SQS's {limit}s: schedule it with beat"
        )
