"""Heartbeats, and the verdicts a supervisor's probe reads from them (`kopter health`).

A worker and beat each write a small JSON file in ``KOPTER_HEALTH_DIR`` as they go: the worker
from its event loop, with the time SQS last answered its consumer's receive and whether it had
room for more work; beat at every tick, with its tick interval and whether Redis answered. A file
is replaced whole (written aside, then renamed), so a probe never reads half of one. The probe
compares those times with the clock: it needs neither Redis nor SQS, so a probe never fails
because a dependency it does not own is slow.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kopter.settings import Settings

# Beat is dead after this many ticks without one (a Redis call that hangs costs one tick).
BEAT_TICKS_MISSED = 2


@dataclass(frozen=True)
class Verdict:
    healthy: bool
    line: str


def heartbeat_path(settings: Settings, role: str, name: str = "") -> Path:
    safe = "".join(c if c.isalnum() or c in "-_.@" else "_" for c in name)
    return Path(settings.health_dir) / (f"{role}-{safe}.json" if safe else f"{role}.json")


def write_heartbeat(path: Path, fields: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, aside = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        json.dump({"at": time.time(), "pid": os.getpid(), **fields}, f)
    os.replace(aside, path)


def read_heartbeat(path: Path) -> dict[str, Any] | None:
    try:
        return dict(json.loads(path.read_text()))
    except (FileNotFoundError, ValueError):
        return None


def worker_verdict(settings: Settings, node: str, now: float | None = None) -> Verdict:
    """Healthy while the worker's event loop turns and its consumer receives from SQS (or has
    no room for more work: a worker running all it may hold does not receive)."""
    now = time.time() if now is None else now
    path = heartbeat_path(settings, "worker", node)
    beat = read_heartbeat(path)
    grace = settings.health_grace
    if beat is None:
        return Verdict(False, f"worker {node}: no heartbeat at {path} (not started yet?)")
    # Written every quarter of the grace period: two missed means the loop has stopped.
    silent, limit = now - beat["at"], grace / 2
    if silent > limit:
        return Verdict(False, f"worker {node}: no heartbeat for {silent:.0f}s (limit {limit:.0f}s)")
    quiet = now - beat["received_at"]
    if quiet > grace and not beat["busy"]:
        return Verdict(
            False, f"worker {node}: its consumer has not received from SQS for {quiet:.0f}s"
        )
    doing = "busy" if beat["busy"] else f"received {quiet:.0f}s ago"
    return Verdict(True, f"worker {node}: ok ({doing}, {beat['running']} running)")


def beat_verdict(settings: Settings, ready: bool, now: float | None = None) -> Verdict:
    """Healthy while beat ticks; ready when its last tick also reached Redis."""
    now = time.time() if now is None else now
    path = heartbeat_path(settings, "beat")
    beat = read_heartbeat(path)
    if beat is None:
        return Verdict(False, f"beat: no heartbeat at {path} (not started yet?)")
    silent = now - beat["at"]
    limit = BEAT_TICKS_MISSED * beat["interval"]
    if silent > limit:
        return Verdict(False, f"beat: has not ticked for {silent:.0f}s (limit {limit:.0f}s)")
    if ready and not beat["redis"]:
        return Verdict(False, "beat: ticking, but Redis did not answer its last tick")
    role = "holds the lock" if beat["holds_lock"] else "standing by"
    return Verdict(True, f"beat: ok ({role}, ticked {silent:.0f}s ago)")


def api_verdict(url: str, timeout: float) -> Verdict:
    """Healthy when the read API answers its ``/healthz`` with 200 within ``timeout``."""
    target = f"{url.rstrip('/')}/healthz"
    try:
        with urllib.request.urlopen(target, timeout=timeout) as answer:
            status = answer.status
    except urllib.error.HTTPError as e:
        status = e.code
    except (OSError, ValueError) as e:
        return Verdict(False, f"api: {target} does not answer: {e}")
    if status != 200:
        return Verdict(False, f"api: {target} answered HTTP {status}")
    return Verdict(True, f"api: ok ({target})")
