"""The reliability record: each fault test appends one line of what it ran and what it counted,
and `python -m tests.support.reliability` prints the table of docs/reliability.md from the last
run.

A line is written only after the test's own assertions held, so the table never shows a run
that failed; the counts in it are the ones the test compared, not figures typed in by hand.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from tests.support.samples import ROOT

RECORD = Path(os.environ.get("KOPTER_TEST_OUTPUT", ROOT / "test-output")).resolve() / (
    "reliability.jsonl"
)


def record(fault: str, load: str, lost: int, duplicated: int, **figures: object) -> None:
    """One row of the table: ``fault`` injected, ``load`` it ran under, what the test counted."""
    RECORD.parent.mkdir(parents=True, exist_ok=True)
    row = {
        "fault": fault,
        "load": load,
        "lost": lost,
        "duplicated": duplicated,
        "figures": figures,
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    with RECORD.open("a") as f:
        f.write(json.dumps(row) + "\n")


def table(path: Path = RECORD) -> str:
    """The last row of each fault, as a Markdown table."""
    latest: dict[str, dict] = {}
    for line in path.read_text().splitlines():
        row = json.loads(line)
        latest[row["fault"]] = row
    lines = [
        "| Fault | Load | Lost | Duplicated | Measured |",
        "|---|---|---:|---:|---|",
    ]
    for row in latest.values():
        figures = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in row["figures"].items())
        lines.append(
            f"| {row['fault']} | {row['load']} | {row['lost']} | {row['duplicated']} | {figures} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    if not RECORD.exists():
        sys.exit(f"no {RECORD}: run `make test` (or `make soak`) first")
    print(table())
