"""The load generator of `benchmarks.api`, run in a process of its own: CONCURRENCY threads, each
on a keep-alive connection to 127.0.0.1:PORT, ask for PATH's first page and then the second (with
the first's `next` cursor), in turn, for SECONDS, then print one JSON line: requests, failures,
the seconds taken and the latencies in milliseconds (p50, p90, p99, max). The bearer token comes
from KOPTER_BENCH_TOKEN, not the command line.

    python -m benchmarks.loadgen PORT PATH CONCURRENCY SECONDS
"""

from __future__ import annotations

import http.client
import json
import os
import re
import sys
import threading
import time
from urllib.parse import quote

NEXT = re.compile(rb'"next":(?:"([^"]+)"|null)\}$')  # the page's last field: no JSON parse


def ask(port: int, path: str, deadline: float, latencies: list[float], failures: list[int]) -> None:
    headers = {"Authorization": f"Bearer {os.environ['KOPTER_BENCH_TOKEN']}"}
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    cursor: bytes | None = None
    while time.perf_counter() < deadline:
        url = path + (f"&cursor={quote(cursor.decode())}" if cursor else "")
        began = time.perf_counter()
        connection.request("GET", url, headers=headers)
        response = connection.getresponse()
        body = response.read()
        latencies.append((time.perf_counter() - began) * 1000)
        if response.status != 200:
            failures.append(response.status)
        match = NEXT.search(body) if cursor is None else None
        cursor = match.group(1) if match else None


def main() -> None:
    port, path, concurrency, seconds = sys.argv[1:]
    per_thread: list[list[float]] = [[] for _ in range(int(concurrency))]
    failures: list[int] = []
    began = time.perf_counter()
    deadline = began + float(seconds)
    threads = [
        threading.Thread(target=ask, args=(int(port), path, deadline, mine, failures))
        for mine in per_thread
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    took = time.perf_counter() - began
    latencies = sorted(x for mine in per_thread for x in mine)

    def at(share: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(share * len(latencies)))], 1)

    print(
        json.dumps(
            {
                "requests": len(latencies),
                "failures": failures[:10],
                "seconds": round(took, 2),
                "p50": at(0.50),
                "p90": at(0.90),
                "p99": at(0.99),
                "max": round(latencies[-1], 1),
            }
        )
    )


if __name__ == "__main__":
    main()
