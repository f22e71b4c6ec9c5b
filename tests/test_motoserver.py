"""The local stack's moto answers DynamoDB one request at a time, as DynamoDB's conditions need."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from kopter.motoserver import AtomicDynamoDB


class Overlaps:
    """A WSGI app that counts, by service, how many of its requests were answered at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now: dict[str, int] = {}
        self.most: dict[str, int] = {}

    def __call__(self, environ, start_response):
        service = environ.get("HTTP_X_AMZ_TARGET", "sqs").split("_")[0]
        with self.lock:
            self.now[service] = self.now.get(service, 0) + 1
            self.most[service] = max(self.most.get(service, 0), self.now[service])
        start_response("200 OK", [])
        yield b"{"
        time.sleep(0.05)  # the body is written while the answer is made, as moto's is
        with self.lock:
            self.now[service] -= 1
        yield b"}"


def test_dynamodb_requests_are_answered_one_at_a_time_and_others_at_once():
    inner = Overlaps()
    app = AtomicDynamoDB(inner)
    environs = [{"HTTP_X_AMZ_TARGET": "DynamoDB_20120810.UpdateItem"}, {}] * 6

    def call(environ):
        return b"".join(app(environ, lambda *_: None))

    with ThreadPoolExecutor(len(environs)) as pool:
        assert list(pool.map(call, environs)) == [b"{}"] * len(environs)
    assert inner.most["DynamoDB"] == 1
    assert inner.most["sqs"] > 1
