"""The beat schedule and the routing of every task to its queue."""

import re

import pytest
from celery.schedules import crontab
from redbeat.schedulers import RedBeatScheduler

from beat_schedule import beat_schedule
from kopter.queues import WORK_QUEUES
from tasks import app
from tasks.beat import Scheduler
from tests.support.samples import ROOT

pytestmark = pytest.mark.unit


def _documented() -> dict[str, tuple[crontab, str]]:
    """The table of beat entries in docs/architecture.md: each entry's time (UTC) and task."""
    rows = re.findall(
        r"^\| `([\w-]+)` \| ([^|]+) \| `(tasks\.[\w.]+)` \|$",
        (ROOT / "docs" / "architecture.md").read_text(),
        re.MULTILINE,
    )
    documented = {}
    for name, when, task in rows:
        if hourly := re.match(r"hourly at :(\d\d)", when):
            documented[name] = (crontab(minute=int(hourly[1])), task)
        else:
            documented[name] = (crontab(*when.strip(" `").split()), task)
    return documented


def test_every_entry_is_the_documented_one_with_expires():
    schedule = beat_schedule()
    documented = _documented()
    expected = {"ec2-pricing", "ec2-describer", "aggregator", "backup-job", "audit"}
    assert set(schedule) == set(documented) == expected
    app.loader.import_default_modules()
    for name, entry in schedule.items():
        assert (entry["schedule"], entry["task"]) == documented[name], name
        assert entry["task"] in app.tasks, name
        assert entry["options"]["expires"] > 0, name
    for hourly in ("ec2-pricing", "ec2-describer", "aggregator"):
        assert schedule[hourly]["options"]["expires"] < 3600, hourly


def test_each_task_runs_on_the_queue_its_module_names():
    app.loader.import_default_modules()
    kopter_tasks = [name for name in app.tasks if name.startswith("tasks.")]
    assert kopter_tasks
    for name in kopter_tasks:
        queue = name.split(".")[1]
        assert queue in WORK_QUEUES, name
        assert app.amqp.router.route({}, name)["queue"].name == queue, name


def test_beat_runs_on_redbeat_with_its_own_redis_url():
    # redbeat's scheduler, made to ride out a Redis outage (tests/test_recovery.py).
    assert app.conf.beat_scheduler == "tasks.beat:Scheduler"
    assert issubclass(Scheduler, RedBeatScheduler)
    assert app.conf.redbeat_redis_url == app.conf.result_backend
    assert app.conf.redbeat_redis_url.startswith("redis://")


def test_kopter_run_offers_every_job_of_the_task_layer_and_each_is_a_beat_entry():
    from kopter.cli.jobs import JOBS as OFFERED
    from tasks.jobs import JOBS

    assert sorted(OFFERED) == sorted(JOBS)
    assert {job.entry for job in JOBS.values()} <= set(beat_schedule())
