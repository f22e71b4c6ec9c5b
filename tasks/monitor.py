"""The app Flower runs on: ``celery -A tasks.monitor flower`` (what ``kopter flower`` runs).

It is kopter's app, with the same configuration and tasks, except that it reads events from
the control plane's Redis (``tasks.controlplane``) instead of from SQS. Importing it also adds
the SQS queue depths to the Prometheus registry that Flower serves at ``/metrics``.
"""

from prometheus_client import REGISTRY

from kopter.metrics import QueueDepths
from kopter.settings import get_settings
from tasks.app import app as worker_app
from tasks.controlplane import monitor_app

app = monitor_app(worker_app)
# Flower accepts a rate limit only for a task it knows: load the task modules as a worker does.
worker_app.loader.import_default_modules()
REGISTRY.register(QueueDepths(get_settings()))

__all__ = ["app"]
