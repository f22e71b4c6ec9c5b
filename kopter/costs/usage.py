"""What one instance used in one clock hour, from what kopter knows of it: its row (the state the
describer last saw) and its Ec2Events (from the describer and CloudTrail). Pure: no I/O.

The state at the start of the hour is read backwards from the first state event at or after it
(a start means it was not running before; a stop or termination means it was), or, with no event
since, from the row. Intervals in the hour then follow the events. The instance type of an
interval is the row's, walked back through later resizes that say what the type was before.

Billing (AWS's rules, simplified where it says so): Linux, Windows, RHEL and Ubuntu Pro are
billed per second with a 60-second minimum per start; other platforms (SUSE, RHEL with HA,
Marketplace images) per started hour, taken here as one hour for each clock hour in which the
instance ran plus one for each further start in it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from kopter.pricing.catalog import PriceKey

HOUR = timedelta(hours=1)
STARTS, STOPS = {"launched", "started"}, {"stopped", "terminated"}
PER_SECOND_OS = {"Linux", "Windows", "RHEL", "Ubuntu Pro"}
MINIMUM_SECONDS = 60

# PlatformDetails -> (operatingSystem, preInstalledSw, licenseModel) of the price list.
_PLATFORMS = {
    "Linux/UNIX": ("Linux", "NA"),
    "Red Hat Enterprise Linux": ("RHEL", "NA"),
    "Red Hat Enterprise Linux with HA": ("Red Hat Enterprise Linux with HA", "NA"),
    "SUSE Linux": ("SUSE", "NA"),
    "Ubuntu Pro": ("Ubuntu Pro", "NA"),
    "Windows": ("Windows", "NA"),
}
_SQL = {"Standard": "SQL Std", "Web": "SQL Web", "Enterprise": "SQL Ent"}
_TENANCY = {"default": "Shared", "dedicated": "Dedicated", "host": "Host"}


def price_key(instance_type: str, platform: str | None, tenancy: str | None) -> PriceKey:
    """The price-list product an instance is billed as."""
    platform = platform or "Linux/UNIX"
    license_model = "No License required"
    if platform.endswith(" BYOL"):
        platform, license_model = platform.removesuffix(" BYOL"), "Bring your own license"
    base, _, sql = platform.partition(" with SQL Server ")
    os, software = _PLATFORMS.get(base, (base, "NA"))
    if sql:
        software = _SQL.get(sql, f"SQL {sql}")
    return PriceKey(
        instance_type, os, _TENANCY.get(tenancy or "default", "Shared"), license_model, software
    )


@dataclass(frozen=True)
class Change:
    """What the timeline needs of an Ec2Event."""

    at: datetime
    kind: str
    detail: dict[str, Any] | None = None


@dataclass(frozen=True)
class Known:
    """What the describer last saw of an instance (None: it never saw it, CloudTrail did)."""

    state: str
    instance_type: str
    launch_time: datetime | None  # its last start
    stopped_at: datetime | None = None  # when it last stopped or terminated, if EC2 said


@dataclass(frozen=True)
class Usage:
    instance_id: str
    instance_type: str
    seconds: int  # running in the hour
    billed_seconds: int
    starts: int  # starts within the hour


def usage(
    instance_id: str,
    known: Known | None,
    changes: Sequence[Change],
    hour: datetime,
    os: str,
    fallback_type: str | None = None,
) -> list[Usage]:
    """The instance's usage in ``[hour, hour + 1h)``, one per instance type it ran as.
    ``changes`` are its events at or after ``hour``, in time order."""
    end = hour + HOUR
    states = [c for c in changes if c.kind in STARTS | STOPS]
    if known is not None:
        states = _reconciled(states, known, hour)
    if states:
        running = states[0].kind in STOPS  # the first change after the hour began says
    elif known is not None:
        running = known.state == "running"
    else:
        return []
    intervals: list[tuple[datetime, datetime, bool]] = []  # (start, end, began with a start)
    opened = hour if running else None
    began = False
    for change in states:
        if change.at >= end:
            break
        if change.kind in STARTS and opened is None:
            opened, began = max(change.at, hour), True
        elif change.kind in STOPS and opened is not None:
            intervals.append((opened, min(change.at, end), began))
            opened, began = None, False
    if opened is not None:
        intervals.append((opened, end, began))
    by_type: dict[str, tuple[int, int, int]] = {}
    for start, stop, began in intervals:
        seconds = max(0, int((stop - start).total_seconds()))
        itype = _type_at(start, known, changes, fallback_type)
        if os in PER_SECOND_OS:
            billed = max(seconds, MINIMUM_SECONDS) if began else seconds
        else:
            billed = 3600
        s, b, n = by_type.get(itype, (0, 0, 0))
        by_type[itype] = (s + seconds, b + billed, n + began)
    return [Usage(instance_id, t, s, b, n) for t, (s, b, n) in by_type.items() if s or b]


def _reconciled(states: list[Change], known: Known, hour: datetime) -> list[Change]:
    """Add the change the row implies and no event recorded: a running instance whose last
    start (its launch time) came after the last stop, a stopped one whose last event is a
    start."""
    last = states[-1] if states else None
    started = known.launch_time
    if (
        known.state == "running"
        and started is not None
        and started >= hour
        and (last is None or (last.kind in STOPS and started > last.at))
    ):
        return [*states, Change(started, "started")]
    stopped = known.stopped_at
    if (
        known.state != "running"
        and last is not None
        and last.kind in STARTS
        and stopped is not None
        and stopped > last.at
    ):
        return [*states, Change(stopped, "stopped")]
    return states


def _type_at(
    moment: datetime, known: Known | None, changes: Iterable[Change], fallback: str | None
) -> str:
    itype = known.instance_type if known else (fallback or "unknown")
    for change in sorted(changes, key=lambda c: c.at, reverse=True):
        if change.at <= moment:
            break
        if change.kind == "resized" and change.detail and change.detail.get("from"):
            itype = change.detail["from"]
    return itype
