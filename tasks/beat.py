"""Beat's scheduler: celery-redbeat's, made to ride out Redis going away or losing its data.

Stock redbeat takes its lock once, at start-up, and then extends it at every tick; a Redis error
during a tick, or a lock found gone (Redis restarted empty, or the lock expired while this beat
stalled), ends the beat process, and a beat that starts while another holds the lock blocks
inside start-up. Here the lock is held tick by tick:

- each tick first renews the lock, or tries to take it when this beat does not hold it (a
  standby beat tries every ``beat_max_loop_interval``); without the lock nothing fires;
- a lock found gone on renewal is given up and tried for again at once: free, it is taken back
  (Redis lost it), held by another beat, this one stands by;
- the beat that takes the lock writes the schedule back when Redis has lost it (it lives beside
  the lock), so entries fire again without a restart; an entry whose run Redis forgot counts
  its period from then, so it never fires twice;
- a Redis error skips the tick: nothing fires, and the next tick tries again. Beat's Redis calls
  time out (``redbeat_redis_options``), so a connection that stops answering costs a tick;
  beat started while Redis is down waits for it and writes the schedule once it answers;
- fencing: an entry is claimed (its new last run written) by a script that first checks, inside
  Redis, that this beat's token still holds the lock, and is sent only once claimed. A holder
  frozen mid-tick past the lock timeout, then resumed, finds its token gone and fires nothing;
  the new holder sees the runs the old one claimed. A holder that dies between claim and send
  loses that run: at most once, never twice;
- every tick writes beat's heartbeat for `kopter health beat` (kopter/health.py).
"""

from __future__ import annotations

import json
from typing import Any

import redis
from celery.beat import ScheduleEntry
from celery.utils.log import get_logger
from redbeat.decoder import RedBeatJSONEncoder
from redbeat.schedulers import RedBeatScheduler, RedBeatSchedulerEntry, get_redis

from kopter.health import heartbeat_path, write_heartbeat
from kopter.settings import get_settings

logger = get_logger("celery.beat")

REDIS_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)

# KEYS: the lock, the entry, the schedule; ARGV: this beat's lock token, the entry's new meta and
# score. Writes the claim only while the token holds the lock.
CLAIM = """
if redis.call('get', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('hset', KEYS[2], 'meta', ARGV[2])
redis.call('zadd', KEYS[3], ARGV[3], KEYS[2])
return 1
"""


class LockLost(Exception):
    """This beat's token no longer holds the lock: it fires nothing more."""


class Scheduler(RedBeatScheduler):
    def __init__(self, app: Any, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        # With lock_key unset, redbeat's own locking (its beat_init handler and the renewal in
        # its tick) stands aside: the lock is taken and renewed in tick() below.
        self.lock_name, self.lock_key = self.lock_key, None
        self.standing_by = False
        self.heartbeat = heartbeat_path(get_settings(), "beat")

    # Celery's __init__ calls setup_schedule() before the attributes above exist.
    schedule_written = False

    def setup_schedule(self) -> None:
        try:
            super().setup_schedule()
        except REDIS_ERRORS as e:
            logger.warning(
                "beat: Redis unavailable: the schedule is written once it answers: %s", e
            )
            return
        self.schedule_written = True

    @property
    def info(self) -> str:
        lock = f"       . lock -> `{self.lock_name}` ({self.lock_timeout}s), renewed every tick"
        return f"{super().info}\n{lock}"

    def tick(self, **kwargs: Any) -> float:
        interval, reached_redis = float(self.max_interval), True
        try:
            if self._hold_lock():
                interval = super().tick(**kwargs)
        except REDIS_ERRORS as e:
            logger.warning("beat: Redis unavailable, nothing fires until it answers: %s", e)
            self.standing_by, reached_redis = False, False
        except LockLost as e:
            logger.warning("beat: Lost the lock mid-tick: %s not fired", e)
            self.lock = None
        try:
            write_heartbeat(
                self.heartbeat,
                {
                    "interval": self.max_interval,
                    "redis": reached_redis,
                    "holds_lock": self.lock is not None,
                },
            )
        except OSError as e:
            logger.warning("beat: Cannot write the heartbeat %s: %s", self.heartbeat, e)
        return interval

    def maybe_due(self, entry: RedBeatSchedulerEntry, **kwargs: Any) -> Any:
        """redbeat's, with the entry claimed under the lock before it is sent."""
        is_due, next_time_to_run = entry.is_due()
        if not is_due:
            return next_time_to_run
        claimed = self._claim(entry)
        logger.info("Scheduler: Sending due task %s (%s)", entry.name, entry.task)
        try:
            self.apply_async(claimed, advance=False, **kwargs)
        except Exception as exc:
            logger.exception("Scheduler: Message Error: %s", exc)
        return next_time_to_run

    def _claim(self, entry: RedBeatSchedulerEntry) -> RedBeatSchedulerEntry:
        """The entry's next instance, its last run written in Redis only while this beat holds
        the lock; LockLost otherwise."""
        if self.lock is None:
            raise LockLost(entry.name)
        # Celery's own next instance: redbeat's writes to Redis unconditionally.
        claimed: RedBeatSchedulerEntry = ScheduleEntry._next_instance(entry)
        meta = {"last_run_at": claimed.last_run_at, "total_run_count": claimed.total_run_count}
        client = get_redis(self.app)
        keys = [self.lock_name, entry.key, self.app.redbeat_conf.schedule_key]
        token = self.lock.local.token
        args = [token, json.dumps(meta, cls=RedBeatJSONEncoder), claimed.score]
        if not client.eval(CLAIM, len(keys), *keys, *args):
            raise LockLost(entry.name)
        return claimed

    def _hold_lock(self) -> bool:
        """Renew the lock, or take it if it is free: False while another beat holds it."""
        if self.lock is not None:
            try:
                self.lock.reacquire()  # back to the full timeout
                return self._write_schedule()
            except redis.exceptions.LockError:
                logger.warning("beat: Lost the lock (it expired, or Redis lost it)")
                self.lock = None
        client = get_redis(self.app)
        lock = client.lock(self.lock_name, timeout=self.lock_timeout)
        if not lock.acquire(blocking=False):
            if not self.standing_by:
                logger.info("beat: Another beat holds the lock: standing by")
                self.standing_by = True
            return False
        self.lock, self.standing_by = lock, False
        logger.info("beat: Acquired lock")
        if self.schedule_written and not client.exists(self.app.redbeat_conf.schedule_key):
            logger.warning("beat: Redis lost the schedule: writing it again")
            self.schedule_written = False
        return self._write_schedule()

    def _write_schedule(self) -> bool:
        """Write the schedule if Redis has not taken it yet; tried again each tick until it has."""
        if not self.schedule_written:
            logger.info("beat: Writing the schedule (Redis did not take it before)")
            super().setup_schedule()
            self.schedule_written = True
        return True

    def close(self) -> None:
        try:
            super().close()
        except (*REDIS_ERRORS, redis.exceptions.LockError) as e:
            logger.warning("beat: Could not release the lock, it will expire: %s", e)
            self.lock = None  # close() runs twice on SIGTERM: say it once
