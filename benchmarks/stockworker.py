"""The worker as it was before delays waited in SQS, for the baseline of benchmarks/delays.py:
Celery's own consumer, which takes a task that is not due yet and holds it, unacknowledged,
until it is (kopter's, tasks/consumer.py, sends it back to SQS)."""

from tests.support.harness import app

app.conf.worker_consumer = "tasks.controlplane:Consumer"

__all__ = ["app"]
