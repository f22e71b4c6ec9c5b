"""The base class of every kopter task."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from celery import Task

from kopter.settings import SQS_MAX_DELAY_SECONDS


class KopterTask(Task):
    def apply_async(self, args: Any = None, kwargs: Any = None, **options: Any) -> Any:
        delay = _delay(options)
        if delay > 0 and "delay_seconds" not in options:
            options["delay_seconds"] = sqs_delay(delay)
        return super().apply_async(args, kwargs, **options)


def sqs_delay(delay: float) -> int:
    """The DelaySeconds that makes SQS hold a message due in ``delay`` seconds (rounded up, so it
    is never handed out early), at most SQS's 900 s; a longer wait is several such delays
    (tasks/consumer.py sends a message that arrives early back with what remains)."""
    return min(math.ceil(delay), SQS_MAX_DELAY_SECONDS)


def _delay(options: dict[str, Any]) -> float:
    """Seconds until a task sent with these options is due (0: now)."""
    eta = options.get("eta")
    if eta is not None:
        when = eta if eta.tzinfo else eta.replace(tzinfo=UTC)
        return float((when - datetime.now(UTC)).total_seconds())
    return float(options.get("countdown") or 0)
