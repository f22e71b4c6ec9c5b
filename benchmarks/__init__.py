"""`make bench`: figures on this machine, beside the limits they must meet."""

from __future__ import annotations

import os
import secrets
import sys

from kopter.devstack import LOCAL_AWS_ENV, free_port


def machine() -> str:
    """The machine's line: cores, memory, Python, and how busy it was at the start."""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"machine: {os.cpu_count()} cores, {memory:.1f} GiB, python {sys.version.split()[0]}, "
        f"load average {os.getloadavg()[0]:.1f} at the start"
    )


def local_aws_and_redis(prefix: str) -> tuple[int, int]:
    """Point this process at a moto and a Redis on free ports (to be started), under a new
    prefix; their ports. Call before kopter reads its settings."""
    moto_port, redis_port = free_port(), free_port()
    os.environ.update(
        {
            **LOCAL_AWS_ENV,
            "KOPTER_AWS_ENDPOINT_URL": f"http://127.0.0.1:{moto_port}",
            "KOPTER_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
            "KOPTER_PREFIX": f"{prefix}{secrets.token_hex(3)}-",
        }
    )
    return moto_port, redis_port
