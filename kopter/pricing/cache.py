"""On-demand prices in Redis, so that the aggregator prices a fleet without a table read per
instance: one hash per region, ``price_key -> USD``, replaced whole after each import.

The table is the truth. A region's hash missing (a new Redis, an eviction) is rebuilt from the
table by whoever asks first, under a short lock so that a fleet of workers does not all read the
table at once. A ``.loaded`` field marks a region that has been loaded, so that a region with no
prices is not read again on every look-up.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from decimal import Decimal

import redis

from kopter.pricing.store import on_demand_prices

LOADED = ".loaded"
REBUILD_LOCK_SECONDS = 60


class PriceCache:
    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.redis = client
        self.prefix = prefix

    def _key(self, region: str) -> str:
        return f"{self.prefix}prices:{region}"

    def replace(self, region: str, prices: Iterable[tuple[str, Decimal | str]]) -> int:
        """Swap in the region's prices at once: readers see the old hash or the new one."""
        staging = f"{self._key(region)}:staging"
        pipe = self.redis.pipeline(transaction=False)
        pipe.delete(staging)
        count, batch = 0, {LOADED: "1"}
        for price_key, usd in prices:
            batch[price_key] = str(usd)
            count += 1
            if len(batch) >= 1000:
                pipe.hset(staging, mapping=batch)  # type: ignore[arg-type]
                batch = {}
        if batch:
            pipe.hset(staging, mapping=batch)  # type: ignore[arg-type]
        pipe.rename(staging, self._key(region))
        pipe.execute()
        return count

    def on_demand(self, region: str, price_keys: Sequence[str]) -> dict[str, Decimal | None]:
        """The on-demand hourly USD of each key (None: no price known), loading the region from
        the table when the cache does not have it."""
        key = self._key(region)
        deadline = time.monotonic() + REBUILD_LOCK_SECONDS
        while True:
            loaded, *values = self.redis.hmget(key, [LOADED, *price_keys])
            if loaded is not None:
                return {
                    k: Decimal(v.decode() if isinstance(v, bytes) else v) if v else None
                    for k, v in zip(price_keys, values, strict=True)
                }
            if time.monotonic() > deadline:
                raise TimeoutError(f"the price cache of {region} was not loaded in time")
            lock = f"{key}:rebuilding"
            if self.redis.set(lock, "1", nx=True, ex=REBUILD_LOCK_SECONDS):
                try:
                    self.replace(region, on_demand_prices(region))
                finally:
                    self.redis.delete(lock)
            else:
                time.sleep(0.2)  # another process is loading it
