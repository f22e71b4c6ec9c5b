"""A stand-in for the AWS Price List bulk API on 127.0.0.1, for ``make run`` and the tests.

It serves a directory laid out like the real thing (``offers/v1.0/aws/AmazonEC2/…``) with ETags
and If-None-Match, counts what it was asked, and can misbehave on request (an HTTP 500, a body
cut short, a stall, a slow trickle) so that tests can watch kopter keep its prices.

``python -m kopter.pricing.offerserver --port 8000 DIR`` serves DIR; ``write_offers`` lays out
a region index and region files from offer files.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from kopter.pricing.source import REGION_INDEX_PATH

BASE = "offers/v1.0/aws/AmazonEC2"
# A small price list in AWS's shape for `kopter dev`: the demo fleet's instance types in its two
# regions, at prices AWS published (Linux, Windows, Dedicated, a reserved term).
SAMPLE_OFFERS = Path(__file__).parent / "sample"


def write_offers(root: Path, offers: dict[str, tuple[str, Path]]) -> None:
    """Lay out ``{region: (version, offer file)}`` under ``root`` with a current region index."""
    regions = {}
    for region, (version, source) in offers.items():
        path = f"/{BASE}/{version}/{region}/index.json"
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.resolve() != target.resolve():
            shutil.copyfile(source, target)
        regions[region] = {"regionCode": region, "currentVersionUrl": path}
    index = root / REGION_INDEX_PATH.lstrip("/")
    index.parent.mkdir(parents=True, exist_ok=True)
    index.write_text(
        json.dumps(
            {
                "formatVersion": "v1.0",
                "disclaimer": "Served by kopter's local price-list stand-in.",
                "publicationDate": "2026-11-01T00:00:00Z",
                "regions": regions,
            },
            indent=2,
        )
    )


@dataclass
class Fault:
    """How to answer the next requests whose path contains ``path_part``."""

    path_part: str
    kind: str  # "500", "truncate", "stall", "trickle"
    times: int = 1_000_000
    bytes_per_second: int = 1_000_000  # trickle


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hung up (a test's timeout, a refused body) is not news


class OfferServer:
    def __init__(self, root: Path, port: int = 0) -> None:
        self.root = root
        self.requests: Counter[str] = Counter()  # path -> GETs answered with a body
        self.not_modified: Counter[str] = Counter()
        self.faults: list[Fault] = []
        self._lock = threading.Lock()
        self._server = _QuietServer(("127.0.0.1", port), self._handler())
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> OfferServer:
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._server.shutdown()
        self._server.server_close()

    def fault(self, path_part: str, kind: str, **options: Any) -> None:
        with self._lock:
            self.faults.append(Fault(path_part, kind, **options))

    def clear(self) -> None:
        with self._lock:
            self.faults.clear()
            self.requests.clear()
            self.not_modified.clear()

    def _take_fault(self, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.path_part in path and fault.times > 0:
                    fault.times -= 1
                    return fault
        return None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_: Any) -> None:
                pass

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                file = (server.root / path.lstrip("/")).resolve()
                if not file.is_relative_to(server.root.resolve()) or not file.is_file():
                    self._send_status(404)
                    return
                fault = server._take_fault(path)
                if fault and fault.kind == "500":
                    self._send_status(500)
                    return
                stat = file.stat()
                version = f"{stat.st_size}:{stat.st_mtime_ns}".encode()
                etag = f'"{hashlib.sha256(version).hexdigest()[:32]}"'
                if self.headers.get("If-None-Match") == etag:
                    with server._lock:
                        server.not_modified[path] += 1
                    self.send_response(304)
                    self.send_header("ETag", etag)
                    self.end_headers()
                    return
                with server._lock:
                    server.requests[path] += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(stat.st_size))
                self.send_header("ETag", etag)
                self.end_headers()
                self._send_body(file, stat.st_size, fault)

            def _send_body(self, file: Path, size: int, fault: Fault | None) -> None:
                limit = size // 2 if fault and fault.kind == "truncate" else size
                piece = 1 << 16
                if fault and fault.kind == "trickle":
                    piece = max(1, fault.bytes_per_second // 10)
                elif fault:
                    piece = max(1, size // 8)
                sent = 0
                with file.open("rb") as f:
                    while sent < limit:
                        if fault and fault.kind == "stall" and sent >= size // 2:
                            time.sleep(3600)
                        if fault and fault.kind == "trickle":
                            time.sleep(0.1)
                        chunk = f.read(min(piece, limit - sent))
                        try:
                            self.wfile.write(chunk)
                            self.wfile.flush()
                        except OSError:
                            return
                        sent += len(chunk)
                if limit < size:
                    self.close_connection = True

            def _send_status(self, status: int) -> None:
                body = f"HTTP {status}\n".encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path, help="the directory to serve")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    with OfferServer(args.root, args.port) as server:
        print(f"serving {args.root} at {server.url}", flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    main()
