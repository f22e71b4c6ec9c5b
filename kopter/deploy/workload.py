"""The work N connected accounts make kopter do in a month: the assumptions about the customers'
estates that are not kopter's to know (``Workload``, each default with where it comes from), and
the units of work they make (``Work``): files, records, account-regions described, aggregations,
backups, audited days, visits of the web app, the messages each queue carries and the seconds of
a worker process each needs (``kopter.deploy.usage``'s task times)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

from kopter.deploy import usage
from kopter.errors import Refused

HOURS = 730.0  # a month, as AWS bills it
DAYS = HOURS / 24
SECONDS = HOURS * 3600
V = usage.value


def _assumption(default: float | str, source: str) -> Any:
    return field(default=default, metadata={"source": source})


@dataclass(frozen=True)
class Workload:
    """What N accounts make kopter do: none of it is kopter's to know. Each default says where
    it comes from; `kopter deploy cost --assume NAME=VALUE` changes one."""

    accounts_per_tenant: float = _assumption(10, "benchmarks/describer.py's estate: ten a tenant")
    regions_per_account: float = _assumption(4, "benchmarks/describer.py's four regions")
    instances_per_region: float = _assumption(25, "benchmarks/describer.py's 25 a region")
    changes_per_instance_day: float = _assumption(
        0.1, "a guess: an instance launched, stopped, started, resized or retagged every ten days"
    )
    records_per_account_day: float = _assumption(
        10_000,
        "a guess: a small production account's management events (benchmarks/audit.py's busy "
        "tenant-day is 100,000)",
    )
    files_per_region_hour: float = _assumption(
        12, "CloudTrail delivers a region's log file about every five minutes"
    )
    tagged_share: float = _assumption(
        0.2, "a guess: the share of instances tagged kopter:backup, one volume each"
    )
    deliveries_per_account_day: float = _assumption(
        2, "a guess: alerts a day an account's detections send to a channel (webhook, Slack, email)"
    )
    seconds_per_delivery: float = _assumption(
        0.5, "benchmarks/deliveries.py: a POST to an endpoint nearby, 0.27 s at the median"
    )
    users_per_tenant: float = _assumption(3, "a guess: the people of a customer using the app")
    visits_per_user_day: float = _assumption(2, "a guess: times a user opens the web app a day")
    api_requests_per_visit: float = _assumption(
        3, "the web app's landing page: the unread badge, the cost graph and its cost jumps"
    )
    deploys_per_month: float = _assumption(4, "a guess: `kopter deploy web` runs a month")
    task_time_scale: float = _assumption(
        1.0, "the benchmarks' task times, against moto (slower than AWS): 1 keeps them"
    )
    lambda_memory_mb: float = _assumption(
        1024, "KOPTER_WORKER_MAX_MEMORY_MB: a worker's process is replaced past it"
    )

    @classmethod
    def sources(cls) -> dict[str, tuple[Any, str]]:
        return {f.name: (f.default, f.metadata["source"]) for f in fields(cls)}

    @classmethod
    def with_assumptions(cls, specs: list[str]) -> Workload:
        """The defaults, changed by ``NAME=VALUE`` specs."""
        known, values = cls.sources(), {}
        for spec in specs:
            name, sep, raw = spec.partition("=")
            if not sep or name not in known:
                raise Refused(f"--assume {spec!r}: give NAME=VALUE, NAME one of {', '.join(known)}")
            try:
                number = float(raw)
            except ValueError:
                raise Refused(f"--assume {spec!r}: {raw!r} is not a number") from None
            if not math.isfinite(number) or number < 0:
                raise Refused(f"--assume {spec!r}: give a number of 0 or more")
            values[name] = number
        return cls(**values)


@dataclass(frozen=True)
class Work:
    """A month of it, for ``accounts`` accounts: how many of each unit of work."""

    accounts: int
    tenants: float
    regions: float
    instances: float
    files: float  # CloudTrail log files
    records: float  # CloudTrail records
    region_hours: float  # account-regions described, each hour
    changes: float  # instance changes the describer finds
    account_aggregations: float  # accounts costed, each aggregator run
    tenant_aggregations: float
    backups: float  # account-regions backed up, every 12 hours
    snapshots: float
    audits: float  # tenant-days audited
    visits: float  # of the web app
    api_requests: float
    messages: dict[str, float]  # by queue: each a task (the raw queue's, the bridge's)
    busy: dict[str, float]  # seconds of a worker process, by queue


def work(accounts: int, w: Workload) -> Work:
    tenants = accounts / w.accounts_per_tenant
    regions = accounts * w.regions_per_account
    instances = regions * w.instances_per_region
    files = regions * w.files_per_region_hour * HOURS
    records = accounts * w.records_per_account_day * DAYS
    changes = instances * w.changes_per_instance_day * DAYS
    region_hours = regions * HOURS
    backups = regions * usage.BACKUPS_PER_DAY * DAYS
    snapshots = instances * w.tagged_share * usage.BACKUPS_PER_DAY * DAYS
    account_aggregations = accounts * usage.AGGREGATIONS_PER_HOUR * HOURS
    tenant_aggregations = tenants * usage.AGGREGATIONS_PER_HOUR * HOURS
    audits = tenants * usage.AUDITS_PER_DAY * DAYS
    visits = tenants * w.users_per_tenant * w.visits_per_user_day * DAYS
    deliveries = accounts * w.deliveries_per_account_day * DAYS
    beat = (usage.BEAT_MESSAGES_PER_DAY + usage.CHORD_MESSAGES_PER_DAY) * DAYS
    messages = {
        "cloudtrail-notifications": files * (V("messages_per_file") - 1),
        "ingest": files,
        "describer": region_hours * V("messages_per_region_hour"),
        "aggregator": tenant_aggregations * V("messages_per_tenant_aggregation"),
        "backup": backups * V("messages_per_backup_region"),
        "audit": audits * V("messages_per_tenant_audit_day"),
        "pricing": HOURS * V("messages_per_pricing_hour"),
        "notifications": records * V("messages_per_record"),
        "deliveries": deliveries,
        "beat": beat,  # beat's and the chords' own messages, on the queues above
    }
    scale = w.task_time_scale
    busy = {
        "ingest": scale * (files * V("seconds_per_file") + records * V("seconds_per_record")),
        "describer": scale
        * (region_hours * V("seconds_per_region_hour") + changes * V("seconds_per_change")),
        "aggregator": scale
        * account_aggregations
        * w.regions_per_account
        * w.instances_per_region
        * V("seconds_per_instance_aggregation"),
        "backup": scale * backups * V("seconds_per_backup_region"),
        "audit": scale * records * usage.AUDITS_PER_DAY * V("seconds_per_audited_record"),
        "pricing": scale * HOURS * V("seconds_per_pricing_hour"),
        "notifications": 0.0,
        "deliveries": scale * deliveries * w.seconds_per_delivery,
    }
    return Work(
        accounts,
        tenants,
        regions,
        instances,
        files,
        records,
        region_hours,
        changes,
        account_aggregations,
        tenant_aggregations,
        backups,
        snapshots,
        audits,
        visits,
        visits * w.api_requests_per_visit,
        messages,
        busy,
    )
