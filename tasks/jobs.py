"""Enqueue-and-wait for a person's `kopter run JOB --wait` and `accounts check --on-worker`:
send what beat would send, follow the run's tasks, and sum them up with the summary that lives
beside those tasks, reading their results as the dataclasses they were written from."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from celery.exceptions import TimeoutError as CeleryTimeout
from celery.result import AsyncResult, GroupResult

from beat_schedule import beat_schedule
from kopter.errors import KopterError
from kopter.pricing.refresh import RegionImport
from tasks import aggregator, audit, backup, describer, pricing
from tasks.app import app


@dataclass(frozen=True)
class Job:
    """A job a person can run: its beat entry, and how its fan-out and its tasks' results read."""

    entry: str
    run: type
    result: Callable[[dict[str, Any]], Any]  # a task's result, as the type it was written from
    summarize: Callable[[Any, list[Any]], dict[str, Any]]


JOBS = {
    "pricing": Job(
        "ec2-pricing", pricing.PricingRun, lambda r: RegionImport(**r), pricing.summarize
    ),
    "describer": Job(
        "ec2-describer", describer.DescribeRun, describer.region_result, describer.summarize
    ),
    "aggregator": Job("aggregator", aggregator.AggregateRun, dict, aggregator.summarize),
    "backup": Job("backup-job", backup.BackupRun, backup.region_result, backup.summarize),
    "audit": Job("audit", audit.AuditRun, lambda r: audit.DayAudited(**r), audit.summarize),
}


def enqueue(job: str, kwargs: dict[str, Any]) -> tuple[str, AsyncResult]:
    """Send JOB's beat entry now, with ``kwargs``; its task's name and result."""
    entry = beat_schedule()[JOBS[job].entry]
    return entry["task"], app.send_task(entry["task"], kwargs=kwargs, **entry.get("options", {}))


def follow(job: str, result: AsyncResult, timeout: int) -> dict[str, Any]:
    """Wait for JOB's run and for every task it fanned out; the run's summary."""
    spec = JOBS[job]
    run = spec.run(**wait(result, timeout))
    if run.group is None:
        return {k: v for k, v in vars(run).items() if k != "group"}
    results = wait(GroupResult.restore(run.group, app=app), timeout)
    return spec.summarize(run, [spec.result(r) for r in results])


def wait(result: AsyncResult | GroupResult, timeout: int) -> Any:
    """The task's (or group's) value; a KopterError if it failed or did not finish in time."""
    try:
        value = result.get(timeout=timeout, propagate=False)
    except CeleryTimeout:
        raise KopterError(
            f"task {result.id} did not finish within {timeout}s: is a worker consuming its "
            "queue? (`kopter status`)"
        ) from None
    if result.failed():
        raise KopterError(f"task {result.id} failed: {type(value).__name__}: {value}")
    return value
