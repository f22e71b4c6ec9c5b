"""Worker groups: the queues one ECS service consumes, and the defaults of its parameters.

Every work queue is consumed by exactly one group, so each queue's backlog scales one service.
A group has at most four queues: Application Auto Scaling's metric math reads at most ten
metrics, and each queue takes two (visible and in flight) beside the task count and the
expression itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from kopter import queues
from kopter.deploy.cfn import logical
from kopter.errors import Refused

MAX_QUEUES = 4


@dataclass(frozen=True)
class WorkerGroup:
    name: str
    queues: tuple[str, ...]
    # Defaults of the group's parameters (each can be changed per stack).
    processes: int = 2  # Celery's -c in each task
    least: int = 1
    most: int = 4
    cpu: int = 512  # Fargate CPU units and MiB of one task
    memory: int = 2048
    # What the default backlog target is made of: a task's usual run time, and how long a
    # message may wait before it runs (see kopter.deploy.scaling.backlog_target).
    task_seconds: float = 10
    wait_seconds: float = 300

    @property
    def logical(self) -> str:
        return f"Worker{logical(self.name)}"


# Like the README's production example, each group's queues within the metric limit: work that
# arrives all day and must not wait (CloudTrail files, the hourly describer, notifications), the
# periodic jobs, each long and few, and the deliveries to customers' endpoints apart, so that a
# slow endpoint holds none of the processes ingest needs (docs/detections.md).
DEFAULT_GROUPS = (
    WorkerGroup(
        "realtime",
        ("ingest", "describer", "notifications"),
        processes=4,
        most=10,
        cpu=1024,
        memory=4096,
        task_seconds=2,
        wait_seconds=60,
    ),
    WorkerGroup(
        "jobs",
        ("pricing", "aggregator", "audit", "backup"),
        most=10,
        task_seconds=30,
        wait_seconds=600,
    ),
    WorkerGroup(
        "alerts",
        ("deliveries",),
        processes=4,
        most=4,
        cpu=256,
        memory=512,
        task_seconds=1,
        wait_seconds=10,
    ),
)


def parse(specs: list[str]) -> tuple[WorkerGroup, ...]:
    """Groups from ``NAME=QUEUE,QUEUE`` specs (the defaults when none), checked."""
    if not specs:
        return DEFAULT_GROUPS
    defaults = {g.name: g for g in DEFAULT_GROUPS}
    groups = []
    for spec in specs:
        name, sep, listed = spec.partition("=")
        if not sep or not re.fullmatch(r"[a-z][a-z0-9]{0,19}", name):
            raise Refused(f"--workers {spec!r}: give NAME=QUEUE,QUEUE with NAME of a-z 0-9")
        consumed = tuple(q.strip() for q in listed.split(",") if q.strip())
        known = defaults.get(name)
        groups.append(
            WorkerGroup(name, consumed) if known is None else replace(known, queues=consumed)
        )
    return check(tuple(groups))


def check(groups: tuple[WorkerGroup, ...]) -> tuple[WorkerGroup, ...]:
    names = [g.name for g in groups]
    if len(set(names)) != len(names):
        raise Refused("each worker group needs a name of its own")
    consumed = [q for g in groups for q in g.queues]
    unknown = sorted(set(consumed) - set(queues.WORK_QUEUES))
    if unknown:
        raise Refused(f"not kopter's work queues: {', '.join(unknown)}")
    twice = sorted({q for q in consumed if consumed.count(q) > 1})
    if twice:
        raise Refused(f"a queue in two worker groups: {', '.join(twice)}")
    missing = [q for q in queues.WORK_QUEUES if q not in consumed]
    if missing:
        raise Refused(f"no worker group consumes {', '.join(missing)}")
    for g in groups:
        if not g.queues or len(g.queues) > MAX_QUEUES:
            raise Refused(
                f"worker group {g.name} has {len(g.queues)} queues: give 1 to {MAX_QUEUES} "
                "(its scaling metric reads two metrics a queue, and at most ten)"
            )
    return groups
