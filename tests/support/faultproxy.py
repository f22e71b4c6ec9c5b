"""A fault-injecting HTTP proxy on 127.0.0.1 between kopter and moto's server: it answers a share
of calls as AWS does when it is having a bad day (moto never does), chosen at random with a seed:

- ``throttle``: the service's own throttling error (SQS and STS ``Throttling``, DynamoDB
  ``ProvisionedThroughputExceededException``, S3 ``SlowDown``, EC2 ``RequestLimitExceeded``);
- ``error``: a 500 InternalError;
- ``slow``: the real answer, after a pause of one to three seconds;
- ``drop``: the connection closed before the request reached AWS;
- ``lost``: the request done by AWS, the connection closed before the answer came back (the
  caller cannot know it was done: a write retried here is a write made twice).

A ``rule`` answers the requests it picks itself, every time (an object S3 cannot serve, say),
until it is taken away. Every request is counted, with its fault, and grouped by the SDK's
invocation id (botocore sends the same ``amz-sdk-invocation-id`` with every attempt of one
call), so a test can bound retries.
"""

from __future__ import annotations

import http.client
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.support.proxy import LocalServer

FAULTS = ("throttle", "error", "slow", "drop", "lost")
# (method, path) -> the status, content type and body to answer with, or None to go on.
Rule = Callable[[str, str], tuple[int, str, bytes] | None]
_SERVICE = re.compile(r"Credential=[^/]+/[^/]+/[^/]+/([^/]+)/")


def _xml_error(code: str) -> bytes:
    return (
        "<ErrorResponse><Error><Type>Sender</Type>"
        f"<Code>{code}</Code><Message>injected by the test proxy</Message></Error>"
        "<RequestId>fault-proxy</RequestId></ErrorResponse>"
    ).encode()


def _answer(service: str, fault: str, json_protocol: bool) -> tuple[int, str, bytes]:
    """The status, content type and body AWS answers with, per service and protocol."""
    if service == "s3":
        code, status = ("SlowDown", 503) if fault == "throttle" else ("InternalError", 500)
        body = f"<Error><Code>{code}</Code><Message>injected</Message></Error>".encode()
        return status, "application/xml", body
    if service == "ec2":
        code, status = (
            ("RequestLimitExceeded", 503) if fault == "throttle" else ("InternalError", 500)
        )
        body = (
            f"<Response><Errors><Error><Code>{code}</Code><Message>injected</Message></Error>"
            "</Errors><RequestID>fault-proxy</RequestID></Response>"
        ).encode()
        return status, "text/xml", body
    if json_protocol:
        if fault == "throttle":
            code = (
                "ProvisionedThroughputExceededException"
                if service == "dynamodb"
                else "ThrottlingException"
            )
            status = 400
        else:
            code, status = "InternalServerError", 500
        body = f'{{"__type":"{code}","message":"injected by the test proxy"}}'.encode()
        return status, "application/x-amz-json-1.0", body
    code, status = ("Throttling", 400) if fault == "throttle" else ("InternalError", 500)
    return status, "text/xml", _xml_error(code)


class FaultProxy(LocalServer):
    def __init__(self, target_port: int, rates: dict[str, float], seed: int) -> None:
        unknown = set(rates) - set(FAULTS)
        assert not unknown, unknown
        self.rates = rates
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.injected: Counter[tuple[str, str]] = Counter()  # (service, fault)
        self.requests: Counter[str] = Counter()  # per service
        self.attempts: Counter[str] = Counter()  # per SDK invocation id
        self.enabled = True
        self.rule: Rule | None = None
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                rule = proxy.rule
                answer = rule(self.command, self.path) if rule else None
                if answer is not None:
                    self._send(*answer, [])
                    return
                match = _SERVICE.search(self.headers.get("Authorization", ""))
                service = match.group(1) if match else "unsigned"
                fault = proxy._choose(service, self.headers.get("amz-sdk-invocation-id"))
                if fault == "drop":
                    self.close_connection = True
                    return
                if fault in ("throttle", "error"):
                    json_protocol = "json" in self.headers.get("Content-Type", "")
                    self._send(*_answer(service, fault, json_protocol), [])
                    return
                if fault == "slow":
                    time.sleep(proxy._pause())
                status, headers, payload = self._forward(body)
                if fault == "lost":
                    self.close_connection = True
                    return
                self._send(status, None, payload, headers)

            def _forward(self, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
                upstream = http.client.HTTPConnection("127.0.0.1", target_port, timeout=60)
                try:
                    upstream.request(self.command, self.path, body, dict(self.headers))
                    response = upstream.getresponse()
                    return response.status, response.getheaders(), response.read()
                finally:
                    upstream.close()

            def _send(
                self,
                status: int,
                content_type: str | None,
                payload: bytes,
                headers: list[tuple[str, str]],
            ) -> None:
                self.send_response(status)
                for name, value in headers:
                    if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(name, value)
                if content_type:
                    self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle

            def log_message(self, *_: object) -> None:
                pass

        self._serve(Handler)

    def _choose(self, service: str, invocation: str | None) -> str | None:
        with self.lock:
            self.requests[service] += 1
            if invocation:
                self.attempts[invocation] += 1
            if not self.enabled:
                return None
            draw, fault = self.rng.random(), None
            for name, rate in self.rates.items():
                if draw < rate:
                    fault = name
                    break
                draw -= rate
            if fault:
                self.injected[(service, fault)] += 1
            return fault

    def _pause(self) -> float:
        with self.lock:
            return self.rng.uniform(1.0, 3.0)

    def summary(self) -> dict[str, Any]:
        with self.lock:
            by_fault: Counter[str] = Counter()
            for (_, fault), n in self.injected.items():
                by_fault[fault] += n
            return {
                "requests": sum(self.requests.values()),
                "faults": dict(by_fault),
                "most_attempts_of_one_call": max(self.attempts.values(), default=0),
            }
