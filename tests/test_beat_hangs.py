"""Beat never hangs and never doubles, with real `celery beat` processes:

- started while its Redis is down, it keeps ticking, fires nothing, and fires once Redis answers;
- Redis stops answering (a proxy swallows every byte, the connection stays open): beat's calls
  time out, ticks are skipped, and it fires again once Redis answers, without a restart;
- the lock holder frozen mid-tick (SIGSTOP) past the lock timeout, then resumed (SIGCONT): the
  standby has taken over, and the old holder fires nothing beside it.

`kopter health beat` is asked along the way: live while beat ticks, ready only when Redis
answers, dead while frozen.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import redis

from kopter.devstack import Child, free_port, spawn, start_redis
from kopter.settings import get_settings
from tests.conftest import OUTPUT, ROOT, wait_for
from tests.support.harness import FREEZE_FILE
from tests.support.reliability import record
from tests.support.tcpproxy import SwallowingProxy
from tests.test_recovery import (
    LOCK_TIMEOUT,
    PERIOD,
    RESUME_BOUND,
    TAKEOVER_BOUND,
    Cadence,
    _fires,
    _sends,
)

SWALLOWED = LOCK_TIMEOUT / 2  # the holder keeps its lock through it


def _beat(name: str, env: dict[str, str], scheduler: str | None = None) -> Child:
    argv = [sys.executable, "-m", "celery", "-A", "tests.support.harness", "beat", "-l", "INFO"]
    if scheduler:
        argv += ["-S", scheduler]
    return spawn(name, argv, {**os.environ, **env}, OUTPUT / "logs", cwd=ROOT)


def _env(redis_port: int, health_dir: Path) -> dict[str, str]:
    """A beat of its own Redis, lock timeout and heartbeat directory."""
    return {
        "KOPTER_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "KOPTER_BEAT_LOCK_TIMEOUT": str(LOCK_TIMEOUT),
        "KOPTER_HEALTH_DIR": str(health_dir),
    }


def _unavailable(beat: Child) -> int:
    assert beat.log_path is not None
    return beat.log_path.read_text().count("Redis unavailable")


def _ran(r: redis.Redis, started: float, after: float) -> list[float]:
    return sorted(f["sent"] for f in _fires(r, started).values() if f["sent"] > after)


def test_beat_started_while_redis_is_down_fires_once_it_answers(workers, kopter, tmp_path):
    r = redis.Redis.from_url(get_settings().redis_url)  # where the worker records the ticks
    port = free_port()
    env = _env(port, tmp_path)  # nothing listens there yet
    worker = workers.start("hangs-ticker", "audit", app="tests.support.harness")
    started = time.time()
    beat = _beat("beat-before-redis", env)
    workers.children.append(beat)
    workers.wait_ready(worker)
    wait_for(lambda: _unavailable(beat) >= 3, 60, "beat to tick three times without Redis")
    assert beat.alive, beat.tail(40)
    kopter("health", "beat", env=env)  # live: it ticks
    unready = kopter("health", "beat", "--ready", env=env, ok=False).stdout
    assert "Redis did not answer" in unready, unready
    assert not _fires(r, started)

    redis_dir = OUTPUT / f"redis-late-{port}"
    server = start_redis(port, redis_dir, redis_dir)
    back = time.time()
    try:
        wait_for(lambda: len(_ran(r, started, back)) >= 3, 60, "beat to fire once Redis is up")
        kopter("health", "beat", "--ready", env=env)
        beat.stop()
    finally:
        server.stop()
    fires = _ran(r, started, 0)
    cadence = Cadence(fires)
    first = fires[0] - back
    assert "Writing the schedule (Redis did not take it before)" in beat.tail(400)
    assert first <= RESUME_BOUND, (first, beat.tail(40))
    assert cadence.doubled == 0, cadence.gaps
    record(
        fault="beat started while its Redis is down",
        load=f"1 beat with a 1 s entry ({len(fires)} periods after Redis started)",
        lost=0,
        duplicated=cadence.doubled,
        redis_started=f"{back - started:.1f} s after beat",
        ticks_without_redis=_unavailable(beat),
        first_fire=f"{first:.1f} s after Redis (bound {RESUME_BOUND:.0f} s)",
    )


def test_a_redis_that_stops_answering_costs_beat_ticks_not_the_schedule(workers, kopter, tmp_path):
    r = redis.Redis.from_url(get_settings().redis_url)
    port = free_port()
    redis_dir = OUTPUT / f"redis-swallowed-{port}"
    server = start_redis(port, redis_dir, redis_dir)
    try:
        with SwallowingProxy(port) as proxy:
            env = _env(proxy.port, tmp_path)
            worker = workers.start("swallow-ticker", "audit", app="tests.support.harness")
            started = time.time()
            beat = _beat("beat-swallowed", env)
            workers.children.append(beat)
            workers.wait_ready(worker)
            wait_for(lambda: len(_fires(r, started)) >= 3, 60, "three ticks")

            proxy.swallowing = True
            swallowed = time.time()
            wait_for(lambda: _unavailable(beat) >= 2, 30, "beat's Redis calls to time out")
            kopter("health", "beat", env=env)  # still ticking: not hung
            kopter("health", "beat", "--ready", env=env, ok=False)
            time.sleep(max(0.0, SWALLOWED - (time.time() - swallowed)))
            proxy.swallowing = False
            back = time.time()
            wait_for(lambda: len(_ran(r, started, back)) >= 3, 60, "beat to fire again")
            assert beat.alive, beat.tail(40)
            beat.stop()
    finally:
        server.stop()
    fires = _ran(r, started, 0)
    cadence = Cadence(fires)
    resumed = _ran(r, started, back)[0] - back
    outage = back - swallowed + RESUME_BOUND + PERIOD
    assert resumed <= RESUME_BOUND, (resumed, beat.tail(40))
    assert cadence.doubled == 0, cadence.gaps
    assert cadence.longest <= outage, cadence.gaps
    record(
        fault=f"Redis stops answering beat for {SWALLOWED:.0f} s (a proxy swallows every byte)",
        load=f"1 beat with a 1 s entry ({len(fires) + cadence.missed} periods)",
        lost=sum(gap > outage for gap in cadence.gaps),
        duplicated=cadence.doubled,
        ticks_skipped=_unavailable(beat),
        beat_fired_again=f"{resumed:.1f} s after Redis answered (bound {RESUME_BOUND:.0f} s)",
        longest_gap=f"{cadence.longest:.1f} s",
    )


def _stopped(child: Child) -> bool:
    """The process is stopped (SIGSTOP): state T in /proc."""
    stat = Path(f"/proc/{child.process.pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] == "T"


def test_a_holder_frozen_mid_tick_past_the_lock_timeout_fires_nothing_when_resumed(
    workers, kopter, tmp_path
):
    r = redis.Redis.from_url(get_settings().redis_url)
    worker = workers.start("frozen-ticker", "audit", app="tests.support.harness")
    started = time.time()
    envs = [
        {
            "KOPTER_BEAT_LOCK_TIMEOUT": str(LOCK_TIMEOUT),
            "KOPTER_HEALTH_DIR": str(tmp_path / f"health{i}"),
            FREEZE_FILE: str(tmp_path / f"freeze{i}"),
        }
        for i in (0, 1)
    ]
    beats = [
        _beat(f"frozen-beat{i}", env, scheduler="tests.support.harness:FreezingScheduler")
        for i, env in enumerate(envs)
    ]
    workers.children.extend(beats)
    workers.wait_ready(worker)
    wait_for(lambda: len(_fires(r, started)) >= 3, 60, "three ticks from the lock holder")
    [holder] = [b for b in beats if "Acquired lock" in b.tail(200)]
    [standby] = [b for b in beats if b is not holder]
    env = envs[beats.index(holder)]

    Path(env[FREEZE_FILE]).touch()
    wait_for(lambda: _stopped(holder), 30, "the holder to freeze mid-tick")
    frozen = time.time()
    sent_before = _sends(holder)
    wait_for(lambda: len(_ran(r, started, frozen)) >= 3, 60, "the standby to take over")
    dead = kopter("health", "beat", env=env, ok=False).stdout
    assert "has not ticked" in dead, dead
    os.kill(holder.process.pid, signal.SIGCONT)
    wait_for(lambda: "standing by" in holder.tail(50), 30, "the old holder to stand by")
    # The old holder first: were the standby stopped first, it would hand the lock over.
    holder.stop()
    standby.stop()
    sent_after = _sends(holder) - sent_before

    def all_run() -> bool:
        return len(_ran(r, started, frozen)) >= _sends(standby)

    wait_for(all_run, 60, "the worker to run every tick sent")
    fires = _ran(r, started, 0)
    cadence = Cadence(fires)
    takeover = _ran(r, started, frozen)[0] - frozen
    assert sent_after == 0, holder.tail(40)
    assert cadence.doubled == 0, cadence.gaps
    assert "Lost the lock mid-tick: tick not fired" in holder.tail(200)
    assert cadence.longest <= TAKEOVER_BOUND, cadence.gaps
    record(
        fault="beat lock holder frozen mid-tick (SIGSTOP) past the lock timeout, then SIGCONT",
        load=f"2 beats, 1 s entry, {len(fires) + cadence.missed} periods, lock timeout "
        f"{LOCK_TIMEOUT} s",
        lost=sum(gap > TAKEOVER_BOUND for gap in cadence.gaps),
        duplicated=cadence.doubled,
        sent_by_the_old_holder_after_it_resumed=sent_after,
        takeover=f"{takeover:.1f} s after the freeze",
        longest_gap=f"{cadence.longest:.1f} s (bound {TAKEOVER_BOUND:.0f} s)",
    )
