"""kombu's SQS transport, made to ride out a failed ReceiveMessage (``broker_transport``).

kombu 5.7's asynchronous ReceiveMessage answers a 5xx, a timeout or a dropped connection (curl's
599) with ``[]`` where its caller expects a dict, and a 400 (SQS throttling) with an exception:
either reaches the worker's event loop as "Unrecoverable error", and the worker exits. Found by
the fault-injecting proxy of ``tests/test_faults.py``. Here such an answer is an empty receive,
logged: the consumer polls again at its next turn, as it would have after a quiet queue. Any
other error (an access denied, a queue deleted) is still raised as kombu raises it.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from kombu.transport import SQS

log = logging.getLogger(__name__)

_THROTTLED = (b"Throttling", b"RequestThrottled", b"ThrottlingException")

# When SQS last answered one of this process's receives, whatever it answered: the worker's
# heartbeat (tasks/health.py) tells a consumer that stopped receiving from one that waits.
last_receive_answer = time.time()


def _transient(response: Any, body: bytes) -> bool:
    status = response.status
    if status in (408, 599) or status >= 500:
        return True
    return status == 400 and any(code in body for code in _THROTTLED)


class Channel(SQS.Channel):  # type: ignore[misc]
    def asynsqs(self, queue: str | None = None) -> Any:
        connection = super().asynsqs(queue)
        if not getattr(connection, "_kopter_tolerant", False):
            on_list_ready = connection._on_list_ready

            def tolerant(parent: Any, markers: Any, operation: str, response: Any) -> Any:
                global last_receive_answer
                last_receive_answer = time.time()
                if response.status != 200:
                    body = response.read() or b""
                    if _transient(response, body):
                        log.warning(
                            "SQS %s answered HTTP %s (%s): receiving again at the next poll",
                            operation,
                            response.status,
                            body[:200].decode(errors="replace") or response.reason,
                        )
                        return {}
                return on_list_ready(parent, markers, operation, response)

            connection._on_list_ready = tolerant
            connection._kopter_tolerant = True
        return connection


class Transport(SQS.Transport):  # type: ignore[misc]
    Channel = Channel
