"""The Celery application, configured from ``celeryconfig``."""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery, signals
from prometheus_client import REGISTRY

from kopter.errors import KopterError
from kopter.metrics import QueueDepths
from kopter.queues import WORK_QUEUES, verify_queues
from kopter.settings import get_settings
from kopter.tables import bind
from tasks import shutdown
from tasks.controlplane import ControlPlaneCelery

log = logging.getLogger(__name__)
# botocore says "Found credentials in environment variables" at INFO for every new client.
logging.getLogger("botocore.credentials").setLevel(logging.WARNING)

TASK_MODULES = [
    "tasks.ingest",
    "tasks.describer",
    "tasks.pricing",
    "tasks.aggregator",
    "tasks.backup",
    "tasks.audit",
    "tasks.notifications",
    "tasks.deliveries",
]

# Events and remote control travel over Redis, tasks over SQS: see tasks/controlplane.py.
app = ControlPlaneCelery(
    "kopter",
    task_cls="tasks.base:KopterTask",
    include=TASK_MODULES,
    control="tasks.controlplane:Control",
    events="tasks.controlplane:Events",
)
app.config_from_object("celeryconfig")
app.steps["worker"].add("tasks.visibility:VisibilityKeeper")
app.steps["consumer"].add("tasks.controlplane:RemoteControl")
app.steps["consumer"].add("tasks.health:Heartbeat")  # for `kopter health worker`
# SIGTERM, then SIGKILL after KOPTER_WORKER_STOP_TIMEOUT: see tasks/shutdown.py.
signals.worker_shutting_down.connect(shutdown.start_stop_clock)
# Flower serves the default registry at /metrics: the SQS queue depths join its task counters
# there. No other kopter process serves that registry, so nowhere else are they collected.
REGISTRY.register(QueueDepths(get_settings()))


def consumed_queues(celery_app: Celery) -> list[str]:
    """The queues this worker consumes (`-Q`), by their short names."""
    return [q.name for q in celery_app.amqp.queues.consume_from.values()]


@signals.worker_init.connect
def _bind_tables(**_: Any) -> None:
    """The worker's tables, bound in its main process before the pool forks: every pool child
    inherits them."""
    bind(get_settings())


@signals.celeryd_after_setup.connect
def _refuse_unbootstrapped_queues(sender: str, instance: Any, **_: Any) -> None:
    """Stop a worker at start-up if its queues are missing or have no DLQ (kombu would create
    them bare on first use)."""
    consumed = [q for q in consumed_queues(instance.app) if q in WORK_QUEUES]
    if "ingest" in consumed:
        consumed.append("cloudtrail-notifications")  # drained by the ingest worker's bridge
    try:
        verify_queues(get_settings(), consumed)
    except KopterError as e:
        log.critical("%s", e)
        raise SystemExit(f"kopter: error: {e}") from None
