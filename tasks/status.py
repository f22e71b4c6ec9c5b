"""What `kopter status` reads besides SQS: beat's entries from redbeat, and the workers that
answer over the control plane (tasks/controlplane.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from redbeat.schedulers import RedBeatSchedulerEntry, ensure_conf

from tasks.app import app


def beat_entries() -> list[dict[str, Any]]:
    """Every entry of the schedule, with its last run and next run as beat keeps them in Redis
    (both unset before beat first ran it)."""
    prefix = ensure_conf(app).key_prefix
    rows = []
    for name in sorted(app.conf.beat_schedule):
        last_run: datetime | None = None
        next_run: datetime | None = None
        try:
            entry = RedBeatSchedulerEntry.from_key(prefix + name, app=app)
        except KeyError:  # beat has not started since the entry was added
            pass
        else:
            last_run = entry.last_run_at
            if last_run is not None:
                # Time from now (redbeat's own due_at adds it to the last run instead).
                remaining = entry.schedule.remaining_estimate(last_run)
                next_run = datetime.now(UTC) + max(remaining, timedelta(0))
        rows.append({"beat_entry": name, "last_run": last_run, "next_run": next_run})
    return rows


def workers(timeout: float = 1.0) -> list[dict[str, Any]]:
    """The workers that answer within ``timeout`` seconds, with the queues they consume."""
    replies = app.control.inspect(timeout=timeout).active_queues() or {}
    return [
        {"worker": name, "alive": True, "queues": sorted(q["name"] for q in queues)}
        for name, queues in sorted(replies.items())
    ]
