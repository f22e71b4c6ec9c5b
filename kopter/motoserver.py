"""moto's server as kopter's local stack runs it: ``python -m kopter.motoserver -p PORT``.

moto answers each request on a thread of its own and does not lock its DynamoDB tables, so two
conditional writes racing can both pass their condition. DynamoDB never lets that happen, and
kopter counts on it: of deliveries racing to publish a notification, or workers claiming a
finding, exactly one wins. Here DynamoDB's requests are answered one at a time, as a table's
item is written in AWS; every other service keeps moto's threads.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import run_simple

Wsgi = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class AtomicDynamoDB:
    """A WSGI app answering DynamoDB's requests (``X-Amz-Target: DynamoDB_…``) one at a time."""

    def __init__(self, app: Wsgi) -> None:
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if not environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB"):
            return self.app(environ, start_response)
        with self.lock:  # the whole answer made inside: moto writes as it builds it
            return list(self.app(environ, start_response))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-H", "--host", default="127.0.0.1", help="the address to listen on")
    parser.add_argument("-p", "--port", type=int, required=True, help="the port to listen on")
    args = parser.parse_args(argv)
    os.environ.setdefault("MOTO_PORT", str(args.port))  # moto's own URLs name the port it is on
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(
        args.host,
        args.port,
        AtomicDynamoDB(app),
        threaded=True,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main()
