"""What every `kopter` command shares: rows as columns or JSON lines, the common options, and
progress lines on stderr."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

import click

from kopter.errors import KopterError


def jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    return str(value)


def emit(rows: Iterable[Mapping[str, Any]], as_json: bool, columns: Sequence[str]) -> None:
    """Rows as aligned columns, or as JSON lines with ``--json`` (streamed: a long listing
    starts at once)."""
    if as_json:
        for row in rows:
            click.echo(json.dumps(row, default=jsonable, sort_keys=True))
        return
    rows = list(rows)
    if not rows:
        click.echo("(none)")
        return
    cells = [[cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    click.echo("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for r in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%SZ")
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return str(value)


json_option = click.option("--json", "as_json", is_flag=True, help="One JSON object a line.")
tenant_option = click.option("--tenant", required=True, help="Tenant id or name.")


class Progress:
    """MB read so far on stderr: redrawn in place on a terminal, every 10 % in a log."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.started = time.monotonic()
        self.tty = sys.stderr.isatty()
        self.shown = -1

    def update(self, read: int, size: int | None) -> None:
        step = int(read * 10 / size) if size else read >> 26  # tenths, or every 64 MB
        if not self.tty and step == self.shown:
            return
        self.shown = step
        rate = read / 1e6 / max(time.monotonic() - self.started, 1e-3)
        total = f" of {size / 1e6:,.0f} MB ({read * 100 // size}%)" if size else " MB"
        line = f"{self.label}: {read / 1e6:,.0f}{total}, {rate:,.0f} MB/s"
        click.echo(f"\r{line}" if self.tty else line, err=True, nl=not self.tty)

    def done(self) -> None:
        if self.tty and self.shown >= 0:
            click.echo("", err=True)


def iso_date(text: str) -> str:
    """``--date``'s value, checked: an ISO date."""
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError:
        raise KopterError(f"--date {text!r} is not an ISO date like 2026-11-27") from None


def iso_hour(text: str) -> str:
    """``--hour``'s value as the UTC hour it falls in (a time without zone is UTC)."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise KopterError(f"--hour {text!r} is not an ISO time like 2026-11-27T13:00Z") from None
    return (
        (moment if moment.tzinfo else moment.replace(tzinfo=UTC))
        .astimezone(UTC)
        .replace(minute=0, second=0, microsecond=0)
        .isoformat()
    )
