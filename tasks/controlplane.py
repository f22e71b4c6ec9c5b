"""The control plane: Celery's events and remote control over Redis, while tasks stay on SQS.

SQS has no fanout, so Celery's worker events (what Flower shows) and its pidbox mailbox (inspect,
revoke, shutdown, pool resize, rate limits) cannot travel over it. They go over kopter's Redis
instead, through Celery's own extension points rather than patches:

- ``Control`` (``Celery(control=…)``): every broadcast, and each worker's replies, on Redis;
- ``Events`` (``Celery(events=…)``): an event dispatcher that publishes to Redis's fanout exchange
  and drops events while Redis is away instead of raising into the worker;
- ``Consumer`` (``worker_consumer``): gives the Events step its Redis connection;
- ``RemoteControl`` (a consumer bootstep): the worker's mailbox, in a thread of its own that
  reconnects to Redis by itself; each command runs on the worker's event loop;
- ``ControlPlaneCelery``: the app's class; outside a worker or beat (Flower, ``celery events``)
  it reads events from Redis.

The rule throughout: the control plane never stops the data plane. No Redis error reaches the
SQS consumer, so tasks keep flowing while Redis is down, and monitoring comes back by itself.
Each worker's main process uses only dedicated Redis connections (no kombu pools: a pooled
connection inherited by a forked pool child hung it at start).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from functools import partial
from typing import Any

from celery import Celery, bootsteps
from celery.app.control import Control as CeleryControl
from celery.app.events import Events as CeleryEvents
from celery.events.dispatcher import EventDispatcher
from celery.utils.collections import AttributeDict
from celery.utils.functional import pass1
from celery.worker import control as worker_control
from celery.worker.consumer import Consumer as CeleryConsumer
from kombu import Connection, Producer
from kombu.common import ignore_errors
from kombu.utils.encoding import safe_str

from kopter.settings import get_settings

log = logging.getLogger(__name__)

# Give up on Redis quickly: a worker waits for the control plane nowhere.
_TRANSPORT_OPTIONS = {
    "max_retries": 1,
    "interval_start": 0,
    "interval_step": 0,
    "socket_connect_timeout": 2,
    "socket_timeout": 10,
}
# Seconds between attempts to reach Redis again once it failed (events are dropped meanwhile).
RETRY_SECONDS = 5.0
# How long a remote-control command may wait for the worker's event loop to run it.
COMMAND_TIMEOUT = 30.0


def control_url() -> str:
    return get_settings().redis_url


def control_connection() -> Connection:
    """A new, lazy, dedicated connection to the control plane's Redis."""
    return Connection(control_url(), transport_options=dict(_TRANSPORT_OPTIONS))


class Control(CeleryControl):
    """Remote control whose broadcasts always travel over Redis, whatever connection a caller
    passes (Celery would otherwise use the SQS producer pool, and SQS has no fanout)."""

    def __init__(self, app: Celery | None = None) -> None:
        super().__init__(app)
        # Without a producer pool, the mailbox publishes on the channel it was given: requests on
        # the broadcast's Redis connection, a worker's replies on its mailbox's Redis channel.
        self.mailbox._producer_pool = None

    def broadcast(
        self,
        command: str,
        arguments: dict[str, Any] | None = None,
        destination: Any = None,
        connection: Any = None,
        reply: bool = False,
        timeout: float = 1.0,
        limit: int | None = None,
        callback: Any = None,
        channel: Any = None,
        pattern: str | None = None,
        matcher: str | None = None,
        **extra_kwargs: Any,
    ) -> Any:
        # ``connection`` and ``channel`` are ignored: a caller may hand over its SQS one.
        with control_connection() as conn:
            return super().broadcast(
                command,
                arguments,
                destination,
                conn,
                reply,
                timeout,
                limit,
                callback,
                pattern=pattern,
                matcher=matcher,
                **extra_kwargs,
            )


class Dispatcher(EventDispatcher):
    """Publishes events to Redis, and drops them while Redis cannot be reached.

    Celery would buffer undeliverable events without bound, or raise into the worker's event
    loop; here a failure only costs the events of the next ``RETRY_SECONDS``.
    """

    producer: Producer | None  # EventDispatcher's: None while events are disabled

    def __init__(
        self,
        connection: Any = None,
        hostname: str | None = None,
        enabled: bool = True,
        channel: Any = None,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        # Clients hand over their SQS connection or channel (``default_dispatcher``): not ours.
        self._own_connection = connection is None or connection.transport.driver_type != "redis"
        if self._own_connection:
            connection, channel = control_connection(), None
        self._retry_at = 0.0
        super().__init__(connection, hostname, enabled, channel, *args, **kwargs)

    def _new_producer(self) -> Producer:
        return Producer(
            self.connection,
            exchange=self.exchange,
            serializer=self.serializer,
            auto_declare=False,
        )

    def _publish(
        self,
        event: Any,
        producer: Any,
        routing_key: str,
        retry: bool = False,
        retry_policy: Any = None,
        **kwargs: Any,
    ) -> None:
        # ``producer`` is ignored: a client passes its SQS producer for ``task-sent``.
        if self.producer is None or time.monotonic() < self._retry_at:
            return
        try:
            self.producer.publish(
                event,
                routing_key=routing_key,
                exchange=self.exchange.name,
                retry=False,
                declare=[self.exchange],
                serializer=self.serializer,
                headers=self.headers,
                delivery_mode=self.delivery_mode,
            )
        except Exception as exc:  # whatever Redis raises must not reach the worker
            if self._retry_at == 0.0:
                log.warning("events: Redis unavailable, dropping events until it is back: %r", exc)
            self._retry_at = time.monotonic() + RETRY_SECONDS
            self.connection.collect()  # forget the broken socket; the next try reconnects
            self.producer = self._new_producer()
        else:
            if self._retry_at:
                log.info("events: Redis is back")
            self._retry_at = 0.0

    def close(self) -> None:
        super().close()
        if self._own_connection:
            ignore_errors(self.connection, self.connection.close)


class Events(CeleryEvents):
    dispatcher_cls = "tasks.controlplane:Dispatcher"


class Consumer(CeleryConsumer):
    """The worker's consumer: tasks from SQS; its Events step alone writes, to Redis."""

    def connection_for_write(self, url: str | None = None, heartbeat: float | None = None) -> Any:
        # Not connected here (Celery would wait for it): the dispatcher connects when it sends.
        return control_connection()


class RemoteControl(bootsteps.StartStopStep):
    """The worker's pidbox on Redis, in a thread that reconnects by itself.

    Celery's own Control step runs only on transports with fanout, and would run the mailbox on
    the consumer's connection, where a Redis error stops the worker. Here the thread alone talks
    to Redis; each command runs on the worker's event loop (``hub.call_soon``), where pool resize
    and shutdown must run, and the thread publishes the reply.
    """

    label = "Remote control over Redis"
    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, c: Any, **kwargs: Any) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        super().__init__(c, **kwargs)

    def include_if(self, c: Any) -> bool:
        return bool(c.app.conf.worker_enable_remote_control)

    def start(self, c: Any) -> None:
        handlers = {name: self._on_loop(c, fn) for name, fn in worker_control.Panel.data.items()}
        node = c.app.control.mailbox.Node(
            safe_str(c.hostname),
            handlers=handlers,
            state=AttributeDict(
                app=c.app,
                hostname=c.hostname,
                consumer=c,
                tset=pass1 if c.controller.use_eventloop else set,
            ),
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(c, node, self._stop), name="remote-control", daemon=True
        )
        self._thread.start()

    def stop(self, c: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    shutdown = stop

    @staticmethod
    def _on_loop(c: Any, handler: Callable[..., Any]) -> Callable[..., Any]:
        """``handler``, run on the worker's event loop, its result handed back to the thread."""

        def run(state: Any, **kwargs: Any) -> Any:
            if c.hub is None:
                return handler(state, **kwargs)
            done: Future[Any] = Future()

            def call() -> None:
                try:
                    done.set_result(handler(state, **kwargs))
                except BaseException as exc:
                    done.set_exception(exc)
                    if not isinstance(exc, Exception):
                        raise  # WorkerShutdown: the loop must see it to shut the worker down

            c.hub.call_soon(call)
            return done.result(timeout=COMMAND_TIMEOUT)

        return run

    def _run(self, c: Any, node: Any, stop: threading.Event) -> None:
        delay = 1.0
        while not stop.is_set():
            try:
                with control_connection() as conn:
                    node.channel = conn.default_channel
                    node.listen(callback=partial(self._on_message, c, node))
                    log.info("remote control: listening on %s", conn.as_uri())
                    delay = 1.0
                    while not stop.is_set():
                        # socket.timeout (TimeoutError): nothing came within a second
                        with contextlib.suppress(TimeoutError):
                            conn.drain_events(timeout=1.0)
            except SystemExit:  # a shutdown command: the event loop is shutting the worker down
                return
            except Exception as exc:
                log.warning("remote control: Redis unavailable (%r), retrying in %.0fs", exc, delay)
                stop.wait(delay)
                delay = min(delay * 2, 30.0)

    @staticmethod
    def _on_message(c: Any, node: Any, body: Any, message: Any) -> None:
        c.app.clock.forward()  # clients usually have no valid clock to adjust to
        try:
            node.handle_message(body, message)
        except KeyError as exc:
            log.error("no such control command: %s", exc)


class ControlPlaneCelery(Celery):
    """kopter's app class: where a process reads from depends on what the process is.

    A worker reads tasks and beat checks its broker: both read SQS, as Celery has it. Any other
    process reads only events and replies: Flower (``celery -A tasks flower``, which reads events
    on ``connection()``), ``celery -A tasks events`` (on ``connection_for_read()``), a monitor of
    one's own. There both connections go to the control plane, so the plain app is the monitor's
    app too. Tasks sent from anywhere still go to SQS (``connection_for_write``).
    """

    def _is_worker_or_beat(self) -> bool:
        # Celery's loader runs its worker init in a worker and in beat before either opens a
        # connection (WorkController.__init__, Beat.init_loader); Flower and `celery events`
        # never run it.
        return bool(self.loader.worker_initialized)

    def connection_for_read(self, url: str | None = None, **kwargs: Any) -> Connection:
        if url is None and not self._is_worker_or_beat():
            return control_connection()
        return super().connection_for_read(url, **kwargs)

    def connection(self, hostname: str | None = None, *args: Any, **kwargs: Any) -> Connection:
        if hostname is None and not self._is_worker_or_beat():
            return control_connection()
        return super().connection(hostname, *args, **kwargs)
