"""An HTTP proxy on 127.0.0.1 that forwards to moto's server and records every request, so a
test can see what kopter really sent to AWS (moto itself does not check ExternalId), and what moto
answered (``responses``: the credentials AssumeRole handed out, say); given a ``fault``, it
answers the requests that function picks itself, as AWS would when it refuses or throttles (moto
never does)."""

from __future__ import annotations

import http.client
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class Answered:
    request: Recorded
    status: int
    body: bytes


Fault = Callable[["Recorded"], tuple[int, bytes] | None]


class LocalServer:
    """An HTTP server on a free port of 127.0.0.1, serving from a thread inside a ``with``."""

    url: str

    def _serve(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self._server = _Server(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()


class RecordingProxy(LocalServer):
    def __init__(self, target_port: int, fault: Fault | None = None) -> None:
        self.requests: list[Recorded] = []
        self.responses: list[Answered] = []
        lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                recorded = Recorded(self.command, self.path, dict(self.headers), body)
                with lock:
                    proxy.requests.append(recorded)
                    answer = fault(recorded) if fault else None
                if answer is not None:
                    status, payload = answer
                    self.send_response(status)
                    self.send_header("Content-Type", "text/xml")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                upstream = http.client.HTTPConnection("127.0.0.1", target_port, timeout=30)
                upstream.request(self.command, self.path, body, dict(self.headers))
                response = upstream.getresponse()
                payload = response.read()
                with lock:
                    proxy.responses.append(Answered(recorded, response.status, payload))
                self.send_response(response.status)
                for name, value in response.getheaders():
                    if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                upstream.close()

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _forward

            def log_message(self, *_: object) -> None:
                pass

        self._serve(Handler)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client or moto that hung up (a worker stopping mid long poll) is no error of ours.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)
