"""A TCP proxy on 127.0.0.1 that can stop answering without closing anything.

While ``swallowing``, it keeps accepting connections and reading what clients send, and passes
nothing on in either direction: the half-open connection a dead NAT or a frozen peer leaves,
where a client without timeouts waits forever. A connection opened while swallowing stays
swallowed; new ones forward again once ``swallowing`` is cleared.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Self


class SwallowingProxy:
    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.swallowing = False
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._sockets: list[socket.socket] = []
        self._closed = threading.Event()

    def __enter__(self) -> Self:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *_: object) -> None:
        self._closed.set()
        self._server.close()
        for s in self._sockets:
            s.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            self._sockets.append(client)
            if self.swallowing:
                threading.Thread(target=self._pump, args=(client, None), daemon=True).start()
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            self._sockets.append(upstream)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket | None) -> None:
        """Copy ``source`` to ``sink`` until either closes; swallowed while ``swallowing``."""
        try:
            while data := source.recv(65536):
                if sink is not None and not self.swallowing:
                    sink.sendall(data)
        except OSError:
            pass
        finally:
            if sink is not None:
                with contextlib.suppress(OSError):
                    sink.shutdown(socket.SHUT_WR)
