"""Queue depths as Prometheus gauges, read from SQS at each scrape.

Flower's ``/metrics`` (``celery -A tasks flower``, ``kopter flower``) serves them beside its own
task counters and runtime histograms, which it builds from the control plane's events: one
endpoint, one scrape. ``tasks/app.py`` registers them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from kopter.queues import depths
from kopter.settings import Settings

log = logging.getLogger(__name__)


class QueueDepths(Collector):
    """``kopter_sqs_messages{queue,state}`` and ``kopter_sqs_oldest_message_age_seconds``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def describe(self) -> Iterator[GaugeMetricFamily]:
        """The metrics' names without their values: registering the collector reads no SQS."""
        yield from _families()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            rows = depths(self.settings)
        except Exception:  # a scrape must still serve Flower's own metrics
            log.exception("could not read the SQS queue depths")
            return
        messages, ages = _families()
        for d in rows:
            for state, value in (
                ("visible", d.visible),
                ("in_flight", d.in_flight),
                ("delayed", d.delayed),
                ("dlq", d.dlq_visible),
            ):
                messages.add_metric([d.queue, state], value)
            if d.oldest_age_seconds is not None:
                ages.add_metric([d.queue], d.oldest_age_seconds)
        yield messages
        yield ages


def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
    messages = GaugeMetricFamily(
        "kopter_sqs_messages",
        "Messages in each SQS queue, as SQS reports them: visible, in flight, delayed, and "
        "visible in the queue's DLQ",
        labels=["queue", "state"],
    )
    ages = GaugeMetricFamily(
        "kopter_sqs_oldest_message_age_seconds",
        "CloudWatch's ApproximateAgeOfOldestMessage (absent where AWS publishes none)",
        labels=["queue"],
    )
    return messages, ages
