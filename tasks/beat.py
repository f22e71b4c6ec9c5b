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
- a Redis error skips the tick: nothing fires, and the next tick tries again.
"""

from __future__ import annotations

from typing import Any

import redis
from celery.utils.log import get_logger
from redbeat.schedulers import RedBeatScheduler, get_redis

logger = get_logger("celery.beat")

REDIS_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


class Scheduler(RedBeatScheduler):
    def __init__(self, app: Any, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        # With lock_key unset, redbeat's own locking (its beat_init handler and the renewal in
        # its tick) stands aside: the lock is taken and renewed in tick() below.
        self.lock_name, self.lock_key = self.lock_key, None
        self.standing_by = False

    @property
    def info(self) -> str:
        lock = f"       . lock -> `{self.lock_name}` ({self.lock_timeout}s), renewed every tick"
        return f"{super().info}\n{lock}"

    def tick(self, **kwargs: Any) -> float:
        try:
            if not self._hold_lock():
                return float(self.max_interval)
            return super().tick(**kwargs)
        except REDIS_ERRORS as e:
            logger.warning("beat: Redis unavailable, nothing fires until it answers: %s", e)
            self.standing_by = False
            return float(self.max_interval)

    def _hold_lock(self) -> bool:
        """Renew the lock, or take it if it is free: False while another beat holds it."""
        if self.lock is not None:
            try:
                self.lock.reacquire()  # back to the full timeout
                return True
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
        if not client.exists(self.app.redbeat_conf.schedule_key):
            logger.warning("beat: Redis lost the schedule: writing it again")
            self.setup_schedule()
        return True

    def close(self) -> None:
        try:
            super().close()
        except (*REDIS_ERRORS, redis.exceptions.LockError) as e:
            logger.warning("beat: Could not release the lock, it will expire: %s", e)
            self.lock = None  # close() runs twice on SIGTERM: say it once
