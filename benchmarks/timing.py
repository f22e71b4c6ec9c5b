"""The timing the in-process benchmarks share."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

RUNS = 3


def timed(run: Callable[[], object], runs: int = RUNS) -> tuple[float, float]:
    """Seconds of wall and of this process's CPU, the best of ``runs`` (the machine is shared)."""
    best = (float("inf"), float("inf"))
    for _ in range(runs):
        gc.collect()
        wall, cpu = time.perf_counter(), time.process_time()
        run()
        best = min(best, (time.perf_counter() - wall, time.process_time() - cpu))
    return best
