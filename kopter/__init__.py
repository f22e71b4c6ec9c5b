"""kopter: the domain. Plain Python; the Celery side lives in `tasks/`."""
