"""How many deliveries one tenant has in flight: at most ``KOPTER_CHANNELS_TENANT_CONCURRENCY``.

A delivery to a slow endpoint holds a worker process for up to its timeouts; without a bound, a
tenant whose endpoint hangs, with many notifications, would hold every process of the
`deliveries` workers and delay every other tenant's. A delivery takes a slot before it sends and
gives it back after; one that finds none free waits in SQS and tries later. A slot is a member of
the tenant's sorted set in Redis, scored by when it lapses, so a process killed while holding one
frees it after ``hold`` seconds.
"""

from __future__ import annotations

import secrets

from kopter import cache
from kopter.settings import Settings

# Drops lapsed slots, then takes one if fewer than the limit are held; Redis's own clock, so
# workers' clocks need not agree.
_TAKE = """
local now = redis.call('TIME')
local t = tonumber(now[1]) + tonumber(now[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', t)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  return 0
end
redis.call('ZADD', KEYS[1], t + tonumber(ARGV[2]), ARGV[3])
redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2])) + 1)
return 1
"""


def _key(settings: Settings, tenant_id: str) -> str:
    return f"{settings.prefix}delivery-slots:{tenant_id}"


def take(settings: Settings, tenant_id: str, hold: float) -> str | None:
    """A slot of the tenant's for at most ``hold`` seconds, or None when all are taken."""
    token = secrets.token_hex(8)
    client = cache.client(settings)
    taken = client.eval(
        _TAKE, 1, _key(settings, tenant_id), settings.channels_tenant_concurrency, hold, token
    )
    return token if taken else None


def give_back(settings: Settings, tenant_id: str, token: str) -> None:
    cache.client(settings).zrem(_key(settings, tenant_id), token)
