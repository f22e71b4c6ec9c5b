"""Recovery from two crashes, with real processes:

- the beat holding redbeat's lock is SIGKILLed: the standby beat takes over within the lock
  timeout and a tick, fires what was missed once, and no period ever gets two fires;
- Redis is SIGKILLed (its data lost, as in a crash) and started again empty: beat takes its
  lost lock back and fires again without a restart, the price cache is rebuilt from DynamoDB on
  the next read, and a job's result comes back through Redis again.

Ticks are timed by when beat sent them (``tests.support.harness.tick`` reads it from its message),
not by when the worker ran them, so the worker's latency does not blur the cadence.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import redis

from kopter import cache
from kopter.devstack import Child, free_port, spawn, start_redis, stop_all
from kopter.pricing.cache import PriceCache
from kopter.pricing.offerserver import OfferServer, write_offers
from kopter.settings import get_settings, load
from tests.conftest import OUTPUT, ROOT, wait_for
from tests.support.harness import FIRES, TICKS
from tests.support.offers import P, write_offer
from tests.support.reliability import record

# KOPTER_BEAT_LOCK_TIMEOUT for these beats; celeryconfig makes beat tick (and a standby beat
# try the lock) every fifth of it.
LOCK_TIMEOUT = 10
LOOP = max(1, LOCK_TIMEOUT // 5)
PERIOD = 1.0  # the harness's `tick` entry
# A shared 2-core machine running other heavy tests: a tick, a send to SQS may be late. Half a
# lock timeout of room, and each bound stays short of what a beat that waited for a second lock
# timeout would take.
ROOM = LOCK_TIMEOUT / 2
# The killed holder renewed the lock at its last tick, at most a period after its last fire; the
# lock expires LOCK_TIMEOUT after that, the standby tries it within LOOP and then fires at once.
TAKEOVER_BOUND = PERIOD + LOCK_TIMEOUT + LOOP + ROOM
# Redis back: the tick under way may still spend its two timed-out calls (a quarter of LOOP
# each), the next one comes within LOOP, takes the lock, writes the lost schedule back with the
# entry's period starting then, and fires one PERIOD later.
RESUME_BOUND = LOOP / 2 + LOOP + PERIOD + ROOM
REDIS_DOWN = 3.0


@dataclass(frozen=True)
class Cadence:
    """Consecutive fires of one entry, by the time beat sent them."""

    sent: list[float]

    @property
    def gaps(self) -> list[float]:
        return [b - a for a, b in zip(self.sent, self.sent[1:], strict=False)]

    @property
    def longest(self) -> float:
        return max(self.gaps)

    @property
    def missed(self) -> int:
        """Periods without a fire: beat fires a period after the last fire at the earliest, so
        a gap of n periods or more (n >= 2) means n - 1 periods went by unfired."""
        return sum(max(0, int(gap // PERIOD) - 1) for gap in self.gaps)

    @property
    def doubled(self) -> int:
        """Fires less than half a period after the previous one: one period fired twice."""
        return sum(gap < PERIOD / 2 for gap in self.gaps)


def _fires(r: redis.Redis, since: float) -> dict[str, dict[str, Any]]:
    """Every tick the worker ran that beat sent after ``since`` (an earlier test's may still be
    in SQS), by task id: a redelivered message is one fire."""
    fires = (json.loads(f) for f in r.lrange(FIRES, 0, -1))
    return {f["id"]: f for f in fires if f["sent"] >= since}


def _beat(name: str, env: dict[str, str]) -> Child:
    argv = [sys.executable, "-m", "celery", "-A", "tests.support.harness", "beat", "-l", "INFO"]
    return spawn(name, argv, {**os.environ, **env}, OUTPUT / "logs", cwd=ROOT)


def _sends(beat: Child) -> int:
    assert beat.log_path is not None
    return beat.log_path.read_text().count("Sending due task tick")


def test_a_standby_beat_takes_over_from_a_killed_holder_and_never_fires_twice(workers):
    r = redis.Redis.from_url(get_settings().redis_url)
    r.delete(TICKS, FIRES)
    env = {"KOPTER_BEAT_LOCK_TIMEOUT": str(LOCK_TIMEOUT)}
    worker = workers.start("recovery-ticker", "audit", app="tests.support.harness")
    started = time.time()
    # Started with the worker: their ticks wait in SQS until it is ready.
    beats = [_beat(f"recovery-beat{i}", env) for i in (1, 2)]
    workers.children.extend(beats)
    workers.wait_ready(worker)
    wait_for(lambda: len(_fires(r, started)) >= 3, 60, "three ticks from the lock holder")
    holders = [b for b in beats if "Acquired lock" in b.tail(200)]
    assert len(holders) == 1, [b.name for b in holders]
    [holder] = holders
    [standby] = [b for b in beats if b is not holder]

    killed = time.time()
    holder.kill()  # SIGKILL, pool and all: the lock is left to expire
    wait_for(
        lambda: sum(f["sent"] > killed for f in _fires(r, started).values()) >= 4,
        60,
        "four ticks from the standby",
    )
    standby.stop()
    # The standby stopped cleanly, so every send it logged reached SQS; the killed holder may
    # have logged one it never sent.
    before, after = _sends(holder), _sends(standby)

    def all_run() -> bool:
        sent = [f["sent"] for f in _fires(r, started).values()]
        return (
            sum(s > killed for s in sent) >= after and sum(s < killed for s in sent) >= before - 1
        )

    wait_for(all_run, 60, "the worker to run every tick sent")
    fires = _fires(r, started)
    cadence = Cadence(sorted(f["sent"] for f in fires.values()))
    takeover = min(f["sent"] for f in fires.values() if f["sent"] > killed) - killed

    assert "Acquired lock" in standby.tail(400)
    # A double fire: both beats firing, or the new holder replaying every missed run (it fires
    # the entry once, and counts the next period from then).
    assert cadence.doubled == 0, cadence.gaps
    assert cadence.longest <= TAKEOVER_BOUND, cadence.gaps
    # All told, no more periods go unfired than the longest gap allowed would skip.
    assert cadence.missed <= int(TAKEOVER_BOUND // PERIOD) - 1, cadence.gaps
    record(
        fault="beat lock holder SIGKILLed",
        load=f"2 beats, 1 s entry, {len(fires) + cadence.missed} periods, lock timeout "
        f"{LOCK_TIMEOUT} s",
        # A period is lost when the gap around it is longer than beat's lock allows; the
        # periods inside the takeover are the lock timeout's price, counted beside.
        lost=sum(gap > TAKEOVER_BOUND for gap in cadence.gaps),
        duplicated=cadence.doubled,
        periods_unfired_during_takeover=cadence.missed,
        takeover=f"{takeover:.1f} s after the kill",
        longest_gap=f"{cadence.longest:.1f} s (bound {TAKEOVER_BOUND:.0f} s)",
    )


M5 = "m5.large#Linux#Shared#No License required#NA"


def _serve(root: Path, work: Path, usd: str) -> None:
    """eu-west-3's price list at a new version, m5.large at ``usd``."""
    version = f"2026{secrets.token_hex(5)}"
    offer = write_offer(
        work / f"{version}.json", "eu-west-3", version, [P("m5.large", on_demand=usd)]
    )
    write_offers(root, {"eu-west-3": (version, offer)})


def _imported(kopter, env: dict[str, str]) -> list[dict[str, Any]]:
    """`kopter run pricing --wait`: the worker's imports, their results read through Redis."""
    done = kopter("run", "pricing", "--wait", env=env).stdout.split("\n", 1)[1]
    return json.loads(done)["imports"]


def test_beat_results_and_the_price_cache_come_back_after_redis_loses_its_data(
    workers, kopter, tmp_path
):
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    redis_dir = OUTPUT / f"redis-recovery-{port}"
    server = start_redis(port, redis_dir, redis_dir)
    root = tmp_path / "offers"
    _serve(root, tmp_path, "0.1120000000")
    try:
        with OfferServer(root) as offers:
            env = {
                "KOPTER_REDIS_URL": url,
                "KOPTER_BEAT_LOCK_TIMEOUT": str(LOCK_TIMEOUT),
                "KOPTER_PRICING_URL": offers.url,
                "KOPTER_PRICING_REGIONS": "eu-west-3",
            }
            # kopter's app, with the harness's tick task added for beat to fire.
            name = f"recovery-{secrets.token_hex(3)}"
            worker = workers.start(name, "audit,pricing", app="tests.support.harness", env=env)
            started = time.time()
            beat = _beat("recovery-redis-beat", env)
            workers.children.append(beat)
            workers.wait_ready(worker)

            [first] = _imported(kopter, env)
            assert first["status"] == "imported", first
            settings = load({**os.environ, **env})
            # One long-lived client, as a worker holds: connected before the crash.
            r = cache.client(settings)
            prices = PriceCache(r, settings.prefix)
            assert prices.on_demand("eu-west-3", [M5]) == {M5: Decimal("0.112")}
            wait_for(lambda: len(_fires(r, started)) >= 3, 60, "beat to fire")

            before = _fires(r, started)
            server.kill()  # SIGKILL: nothing saved, everything in Redis is gone
            crashed = time.time()
            time.sleep(REDIS_DOWN)
            server = start_redis(port, redis_dir, redis_dir)
            back = time.time()

            fresh = redis.Redis.from_url(url)
            assert not fresh.exists(f"{settings.prefix}prices:eu-west-3")
            clock = time.monotonic()
            assert prices.on_demand("eu-west-3", [M5]) == {M5: Decimal("0.112")}
            rebuilt = time.monotonic() - clock
            assert fresh.exists(f"{settings.prefix}prices:eu-west-3")  # loaded from DynamoDB

            # A job through the worker: its group and results are stored in the new Redis, and
            # the worker's own cache client writes the new prices there.
            _serve(root, tmp_path, "0.1150000000")
            clock = time.monotonic()
            [second] = _imported(kopter, env)
            job = time.monotonic() - clock
            assert second["status"] == "imported", second
            assert prices.on_demand("eu-west-3", [M5]) == {M5: Decimal("0.115")}

            wait_for(
                lambda: sum(f["sent"] > back for f in _fires(r, started).values()) >= 3,
                60,
                "beat to fire again",
            )
            assert beat.alive, beat.tail(40)

            fires = {**before, **_fires(r, started)}
            cadence = Cadence(sorted(f["sent"] for f in fires.values()))
            resumed = min(f["sent"] for f in fires.values() if f["sent"] > back) - back
            assert "Redis lost the schedule: writing it again" in beat.tail(400)
            assert resumed <= RESUME_BOUND, (resumed, beat.tail(40))
            assert cadence.doubled == 0, cadence.gaps
            # Beat fires nothing while Redis is down: the only long gap is the outage's, from the
            # last fire before the crash (at most a period before it; a tick the worker could not
            # record then is run again once Redis is back) to the first after it.
            outage = back - crashed + RESUME_BOUND + PERIOD
            assert cadence.longest <= outage, cadence.gaps
            assert cadence.missed <= int(outage // PERIOD) - 1, cadence.gaps
            assert worker.alive
            stop_all([beat, worker])  # while Redis still answers their last calls
    finally:
        server.stop()
    record(
        fault=f"Redis SIGKILLed, data lost, back after {REDIS_DOWN:.0f} s",
        load=f"1 worker, 1 beat with a 1 s entry ({len(fires) + cadence.missed} periods), "
        "the price cache",
        lost=sum(gap > outage for gap in cadence.gaps),
        duplicated=cadence.doubled,
        periods_unfired_while_redis_was_down=cadence.missed,
        beat_fired_again=f"{resumed:.1f} s after Redis (bound {RESUME_BOUND:.0f} s)",
        longest_gap=f"{cadence.longest:.1f} s",
        price_cache_rebuilt=f"in {rebuilt * 1000:.0f} ms on the first read",
        pricing_job_after=f"{job:.1f} s",
    )
