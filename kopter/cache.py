"""kopter's own Redis (ElastiCache in production): one client per process, shared by threads."""

from __future__ import annotations

import os
import threading

import redis

from kopter.settings import Settings

_lock = threading.Lock()
_clients: dict[str, redis.Redis] = {}


def _after_fork_in_child() -> None:
    # A forked pool child must open its own connections.
    global _lock
    _lock = threading.Lock()
    _clients.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)


def client(settings: Settings) -> redis.Redis:
    url = settings.redis_url
    with _lock:
        if url not in _clients:
            _clients[url] = redis.Redis.from_url(
                url, socket_timeout=10, socket_connect_timeout=5, health_check_interval=30
            )
        return _clients[url]
