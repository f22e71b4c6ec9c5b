"""Celery's configuration for kopter, derived from kopter's settings (`kopter/settings.py`).

The SQS-specific choices, and why:
- ``task_acks_late``: a message is deleted only after its task finished, so a worker that dies
  mid-task leaves the message to come back after the visibility timeout;
- ``task_reject_on_worker_lost``: otherwise a pool child killed mid-task counts as done;
- ``task_acks_on_failure`` and ``task_acks_on_timeout`` off: a failed or timed-out task's message
  stays in SQS and is received again until the queue's redrive policy moves it to its DLQ,
  instead of vanishing;
- a worker renews the visibility of every message it holds (``tasks.visibility``), so SQS never
  hands a running task to a second worker, however long it runs; the visibility timeout only
  decides how soon a dead worker's messages come back;
- a countdown or ETA waits in SQS, not in a worker: the message is sent with SQS's DelaySeconds
  (tasks/base.py), and one that arrives early (a wait beyond SQS's 900 s) goes back to SQS for
  what remains (tasks/consumer.py);
- prefetch of one message per process, so a long task never sits on messages others could run;
- children are recycled after N tasks or M MB, a guard against slow leaks.
"""

from urllib.parse import urlsplit

from kombu import Exchange, Queue
from redis.backoff import NoBackoff
from redis.retry import Retry

from beat_schedule import beat_schedule
from kopter.aws import MAX_ATTEMPTS
from kopter.queues import WORK_QUEUES
from kopter.settings import get_settings

_settings = get_settings()


def _broker_url() -> str:
    if _settings.aws_endpoint_url is None:
        return "sqs://"
    endpoint = urlsplit(_settings.aws_endpoint_url)
    port = f":{endpoint.port}" if endpoint.port else ""
    return f"sqs://@{endpoint.hostname}{port}"


def route(name, args, kwargs, options, task=None, **kw):
    """`tasks.<queue>.<task>` runs on `<queue>`: a task's module names its queue."""
    parts = name.split(".")
    if len(parts) == 3 and parts[0] == "tasks" and parts[1] in WORK_QUEUES:
        return {"queue": parts[1]}
    return None


broker_url = _broker_url()
# kombu's SQS transport, made to survive a failed ReceiveMessage: tasks/sqs.py.
broker_transport = "tasks.sqs:Transport"
broker_transport_options = {
    "region": _settings.region,
    "queue_name_prefix": _settings.prefix,
    "visibility_timeout": _settings.visibility_timeout,
    "is_secure": _settings.aws_endpoint_url is None
    or _settings.aws_endpoint_url.startswith("https"),
    "wait_time_seconds": 5,
    "polling_interval": 0.3,
    "client-config": {"retries": {"mode": "standard", "max_attempts": MAX_ATTEMPTS}},
}
broker_connection_retry_on_startup = True

task_queues = [Queue(name, Exchange(name), routing_key=name) for name in WORK_QUEUES]
task_default_queue = "notifications"
task_create_missing_queues = False
task_routes = (route,)

task_serializer = "json"
result_serializer = "json"
accept_content = ["json"]

task_acks_late = True
task_reject_on_worker_lost = True
task_acks_on_failure = False
task_acks_on_timeout = False
task_time_limit = _settings.task_time_limit
task_soft_time_limit = max(1, _settings.task_time_limit - max(1, _settings.task_time_limit // 10))
task_track_started = True

worker_prefetch_multiplier = 1
worker_max_tasks_per_child = _settings.worker_max_tasks_per_child
worker_max_memory_per_child = _settings.worker_max_memory_mb * 1024  # in KiB
worker_cancel_long_running_tasks_on_connection_loss = True
# Events and remote control over Redis (tasks/controlplane.py), poison parked (tasks/consumer.py);
# task events on for Flower.
worker_consumer = "tasks.consumer:Consumer"
worker_send_task_events = True

result_backend = _settings.redis_url
result_expires = 24 * 3600
result_extended = True
# A task parked in its DLQ shows its last failure (`kopter dlq show`), also a task that keeps no
# result (ingest_object).
task_store_errors_even_if_ignored = True

# redbeat's scheduler, made to ride out Redis going away or losing its data: tasks/beat.py.
beat_scheduler = "tasks.beat:Scheduler"
redbeat_redis_url = _settings.redis_url  # explicit: redbeat otherwise falls back to the broker
redbeat_key_prefix = f"{_settings.prefix}redbeat"
# The beat holding the lock renews it at every tick, and beat ticks at least five times per lock
# timeout: four ticks may fail before the lock expires. A standby beat tries to take the lock at
# each tick, so it takes over at most a fifth of the timeout after the lock expired.
redbeat_lock_timeout = _settings.beat_lock_timeout
beat_max_loop_interval = max(1, _settings.beat_lock_timeout // 5)
# Beat's Redis calls time out within a quarter of a tick and are retried once on a new
# connection: a Redis that stops answering (a half-open connection, a proxy that swallows bytes)
# costs beat a tick, not the schedule (redis-py would otherwise wait forever).
redbeat_redis_options = {
    "socket_timeout": beat_max_loop_interval / 4,
    "socket_connect_timeout": beat_max_loop_interval / 4,
    "retry": Retry(NoBackoff(), 1),
}
beat_schedule = beat_schedule()

timezone = "UTC"
enable_utc = True
