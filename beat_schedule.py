"""What Celery beat runs, and when (UTC). Replaces the old design's cron.yaml.

Beat runs on celery-redbeat: the schedule lives in Redis under a lock, so two beat processes
never fire an entry twice. Each entry carries ``expires``: a message still queued when its next
period comes is dropped rather than replayed on top of newer work. The fan-out tasks read the
accounts table when they run, so an account added a minute ago is in the next run, with no
restart of beat.
"""

from celery.schedules import crontab

HOUR = 3600


def beat_schedule() -> dict:
    return {
        "ec2-pricing": {
            "task": "tasks.pricing.refresh_price_list",
            "schedule": crontab(minute=5),
            "options": {"expires": HOUR - 5 * 60},
        },
        "ec2-describer": {
            "task": "tasks.describer.describe_all_accounts",
            "schedule": crontab(minute=0),
            "options": {"expires": HOUR - 5 * 60},
        },
        # The describer run triggers the aggregator when it completes; this entry covers an hour
        # whose describer run was lost, and is idempotent with it.
        "aggregator": {
            "task": "tasks.aggregator.aggregate_last_hour",
            "schedule": crontab(minute=40),
            "options": {"expires": HOUR - 10 * 60},
        },
        "backup-job": {
            "task": "tasks.backup.run_backups",
            "schedule": crontab(minute=0, hour="*/12"),
            "options": {"expires": 6 * HOUR},
        },
        "audit": {
            "task": "tasks.audit.run_daily_audit",
            "schedule": crontab(minute=0, hour=23),
            "options": {"expires": 12 * HOUR},
        },
    }
