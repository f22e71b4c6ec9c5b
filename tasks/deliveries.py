"""The `deliveries` queue: each notification to each of its tenant's channels that wants it.

``fan_out`` (called by the notifications worker once it stored a notice) enqueues one
``deliver`` task per channel. An attempt that fails is tried again after an exponential backoff
with jitter (``KOPTER_CHANNELS_RETRY_SECONDS``, doubled each time, at most SQS's 900 s), the
message waiting in SQS meanwhile (tasks/base.py), up to ``KOPTER_CHANNELS_MAX_ATTEMPTS``; after
the last, or at once when trying again cannot help, its message is parked in the deliveries DLQ
with the reason (`kopter dlq show deliveries`). `kopter dlq redrive deliveries` gives each parked
delivery one more attempt once the cause is fixed.

What bounds a slow endpoint's harm: its own queue (ingest and the other queues never wait on a
delivery), an attempt's time limit (``Settings.channels_attempt_seconds``), and the tenant's
slots (kopter/channels/slots.py): one tenant's deliveries hold at most
``KOPTER_CHANNELS_TENANT_CONCURRENCY`` worker processes at once; the others wait in SQS.
"""

from __future__ import annotations

import logging
import random
from typing import Any

from billiard.einfo import ExceptionWithTraceback
from celery.exceptions import SoftTimeLimitExceeded
from celery.worker.request import Request
from redis.exceptions import RedisError

from kopter.channels import dispatch, slots, store
from kopter.channels.senders import Failed, send
from kopter.notifications import Notice
from kopter.settings import SQS_MAX_DELAY_SECONDS, Settings, get_settings
from tasks.app import app
from tasks.consumer import park_copy

log = logging.getLogger(__name__)
_settings = get_settings()


class GaveUp(Exception):
    """A delivery that will not be tried again: its message is parked, with this as the reason."""


class ParkedWhenGivenUp(Request):
    """A delivery that gave up has its message parked in the DLQ with the reason, at once,
    rather than left for SQS to hand out again until its receive count parks it reasonless."""

    def on_failure(self, exc_info: Any, send_failed_event: bool = True, return_ok: bool = False):
        exc = exc_info.exception
        if isinstance(exc, ExceptionWithTraceback):
            exc = exc.exc
        if isinstance(exc, GaveUp) and park_copy(self._message, str(exc)) is not None:
            self.acknowledge()  # parked: out of the queue; Celery records the failure below
        return super().on_failure(exc_info, send_failed_event, return_ok)


def fan_out(notice: Notice) -> int:
    """Enqueue a delivery of the stored ``notice`` to each channel of its tenant that wants it,
    unless another delivery of its message did or does (kopter/channels/dispatch.py); how
    many."""
    channels = store.wanting(notice.tenant_id, notice.severity)
    if not channels or not dispatch.claim(notice, get_settings().task_time_limit):
        return 0
    for channel in channels:
        deliver.delay(notice.tenant_id, channel.channel_id, notice.as_message())
    dispatch.done(notice)
    return len(channels)


@app.task(
    bind=True,
    Request=ParkedWhenGivenUp,
    max_retries=None,  # attempts are counted here, by ``attempt``
    soft_time_limit=_settings.channels_attempt_seconds,
    time_limit=_settings.channels_attempt_seconds + 10,
)
def deliver(
    self: Any, tenant_id: str, channel_id: str, message: dict[str, Any], attempt: int = 1
) -> str:
    settings = get_settings()
    channel = store.get(tenant_id, channel_id)
    if channel is None:
        return "channel removed"
    arguments = (tenant_id, channel_id, message)
    try:
        slot = slots.take(settings, tenant_id, settings.channels_attempt_seconds)
    except RedisError:
        log.warning("delivery slots unknown (Redis): delivering without one", exc_info=True)
        slot = ""
    if slot is None:  # the tenant's slots are all held: wait in SQS, not in this process
        wait = settings.channels_timeout * random.uniform(1, 2)
        raise self.retry(args=arguments, kwargs={"attempt": attempt}, countdown=wait)
    failure: Failed | None = None
    try:
        send(channel, message, settings)
    except Failed as e:
        failure = e
    except SoftTimeLimitExceeded:
        failure = Failed(f"no answer within {settings.channels_attempt_seconds}s")
    finally:
        if slot:
            slots.give_back(settings, tenant_id, slot)
    store.record(channel, None if failure is None else str(failure))
    if failure is None:
        return "delivered"
    if failure.final or attempt >= settings.channels_max_attempts:
        raise GaveUp(f"{channel.kind} channel {channel_id}, attempt {attempt}: {failure}")
    log.info("%s channel %s, attempt %d: %s", channel.kind, channel_id, attempt, failure)
    raise self.retry(
        args=arguments, kwargs={"attempt": attempt + 1}, countdown=backoff(attempt, settings)
    )


def backoff(attempt: int, settings: Settings) -> float:
    """Seconds before the attempt after ``attempt``: doubled each time, at most SQS's longest
    delay, and drawn from its upper half so that deliveries failing together spread out."""
    ceiling = min(settings.channels_retry_seconds * 2 ** (attempt - 1), SQS_MAX_DELAY_SECONDS)
    return random.uniform(ceiling / 2, ceiling)
