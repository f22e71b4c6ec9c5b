"""kopter's Celery app and its tasks, a module per queue: ``celery -A tasks worker -Q ingest``.

The tasks are thin: they take ids from the message, call into ``kopter`` (which knows nothing
of Celery) and return something small enough for the result backend.
"""

from tasks.app import app

__all__ = ["app"]
