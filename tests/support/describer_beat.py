"""kopter's app with a beat schedule that runs the describer every three seconds for one tenant
(named by KOPTER_TEST_BEAT_TENANT), so a test can add an account while beat runs."""

import os

from tasks import app

__all__ = ["app"]

app.conf.beat_schedule = {
    "ec2-describer": {
        "task": "tasks.describer.describe_all_accounts",
        "schedule": 3.0,
        "kwargs": {"tenant_id": os.environ.get("KOPTER_TEST_BEAT_TENANT")},
    }
}
