"""What each unit of kopter's work asks of AWS, counted, not guessed: the numbers `kopter deploy
cost` multiplies by the work N accounts make.

Each figure says where it was counted. The ``recounted`` ones come from one real worker on every
queue behind a counting proxy in front of moto (``tests/support/recount.py``: 2 accounts of 25
instances in one region, 4 CloudTrail files of 50 records of the real samples, 5 instances an
account tagged for backup), made into request units by AWS's rules
(``tests/support/metering.py``); `tests/test_deploy_cost_recount.py` counts them again and fails
when one differs from the figure here by more than its ``tolerance``, so the bill cannot drift
from the code. The others name the benchmark or test they come from. Task times are measured
through a real worker against moto's server (`make bench`, and the recount's worker log where no
benchmark has one): moto answers slower than AWS, so they are an upper bound (scale them with the
``task_time_scale`` assumption).
"""

from __future__ import annotations

from dataclasses import dataclass

# The recount runs the same code on the same seeded data, so what varies between runs is small:
# which receive brings which message, a worker's log lines. Beyond this, the code changed.
TOLERANCE = 0.15


@dataclass(frozen=True)
class Figure:
    value: float
    per: str  # the unit of work
    counted: str  # where, and what was seen there
    recounted: bool = True  # by tests/test_deploy_cost_recount.py; else as ``counted`` says
    tolerance: float = TOLERANCE


F = Figure

FIGURES: dict[str, Figure] = {
    # --- SQS ------------------------------------------------------------------------------------
    "requests_per_message": F(
        3.0,
        "message",
        "one send, one receive (a worker takes at most one message a free process), one "
        "delete: 26 messages, 78 requests",
    ),
    "visibility_requests": F(
        0.0,
        "run of every phase",
        "none: the visibility keeper renews only what runs past a third of the 1,800 s "
        "visibility timeout",
    ),
    "polls_per_queue_second": F(
        0.2,
        "queue a worker consumes, per second it waits",
        "one long poll of 5 s at a time per queue (celeryconfig's wait_time_seconds, the "
        "bridge's wait_seconds): 24 polls of 8 queues in 15 s",
        tolerance=0.35,  # 15 s hold 3 or 4 polls of a queue, as the polls fall
    ),
    "log_bytes_per_task": F(415.0, "task", "the worker's log (-l INFO) grew 10.8 KB over 26 tasks"),
    # --- CloudTrail ingest ----------------------------------------------------------------------
    "messages_per_file": F(
        2.0, "CloudTrail log file", "S3's notification on the raw queue, then the ingest task"
    ),
    "messages_per_record": F(
        0.0, "CloudTrail record", "no notification raised by the samples' 200 records"
    ),
    "rru_per_file": F(
        3.75,
        "CloudTrail log file",
        "the ingested# marker read (consistent) and the account's row, and the tenant's "
        "detection rules (consistent) and accounts, read by each worker process once per "
        "KOPTER_RULES_CACHE_SECONDS (30 s): 15 RRU for 4 files, 2 processes reading the rules",
    ),
    "wru_per_file": F(1.0, "CloudTrail log file", "the ingested# marker: 4 WRU for 4 files"),
    "bytes_per_file": F(468.0, "CloudTrail log file", "the ingested# marker, kept 30 days"),
    "rru_per_record": F(0.0, "CloudTrail record", "none for the samples' records"),
    "wru_per_record": F(
        9.32,
        "CloudTrail record",
        "its audit-log item and its three indexes (all attributes projected), 1 KB a unit: "
        "1,864 WRU for 200 records",
    ),
    "bytes_per_record": F(
        7298.0,
        "CloudTrail record",
        "the item and its three index copies, with DynamoDB's 100 bytes each: 1.46 MB for 200",
    ),
    # --- the describer --------------------------------------------------------------------------
    "messages_per_region_hour": F(1.0, "account-region-hour", "its describe task"),
    "rru_per_region_hour": F(
        0.75,
        "account-region-hour",
        "the account's row twice (one consistent), besides its instances' rows",
    ),
    "rru_per_instance_hour": F(
        0.06, "instance-hour", "its row in the region's Query: 3 RRU for 50 instances"
    ),
    "wru_per_region_hour": F(
        2.0, "account-region-hour", "the account's health and the region's marker"
    ),
    "wru_per_change": F(
        4.0,
        "instance change",
        "the event and its two indexes, and the instance's row: 200 WRU for 50 launches",
    ),
    "bytes_per_change": F(
        1542.0, "instance change", "the event and its two index copies: 77 KB for 50"
    ),
    "bytes_per_instance": F(585.6, "instance", "its row: 29 KB for 50"),
    # --- the aggregator -------------------------------------------------------------------------
    "messages_per_tenant_aggregation": F(1.0, "tenant, each aggregator run", "its task"),
    "rru_per_account_aggregation": F(
        5.0,
        "account, each aggregator run",
        "its instances, the day's events, the week's points, the account: 10 RRU for 2 "
        "accounts of 25 instances",
    ),
    "wru_per_account_aggregation": F(1.0, "account, each aggregator run", "its hour's point"),
    "bytes_per_point": F(355.0, "account-hour", "the point: 710 bytes for 2"),
    # --- backups --------------------------------------------------------------------------------
    "messages_per_backup_region": F(1.0, "account-region, every 12 hours", "its backup task"),
    "rru_per_backup_region": F(0.75, "account-region, every 12 hours", "the account's row"),
    "wru_per_backup_region": F(0.0, "account-region, every 12 hours", "nothing"),
    "rru_per_snapshot": F(0.1, "snapshot", "the claims read back: 1 RRU for 10 volumes"),
    "wru_per_snapshot": F(
        2.0, "snapshot", "the claim, then the snapshot's record: 20 WRU for 10 volumes"
    ),
    "bytes_per_snapshot": F(514.0, "snapshot", "its item: 5.1 KB for 10"),
    # --- the daily audit ------------------------------------------------------------------------
    "messages_per_tenant_audit_day": F(1.0, "tenant-day audited", "its task"),
    "rru_per_audited_record": F(
        0.22, "record of the day audited", "the day's Query pages: 44 RRU for 200 records"
    ),
    "rru_per_tenant_audit_day": F(
        1.0, "tenant-day audited", "the tenant's accounts and the day's findings of ingest"
    ),
    "wru_per_tenant_audit_day": F(
        6.0, "tenant-day audited", "the digest (5.2 KB for the samples' attack-heavy day)"
    ),
    "bytes_per_digest": F(5241.0, "tenant-day", "the digest of the samples' day"),
    # --- the price list -------------------------------------------------------------------------
    "messages_per_pricing_hour": F(0.0, "hour with no new price file", "no import task"),
    "rru_per_pricing_hour": F(
        1.5,
        "hour with no new price file",
        "the index's version, the Scan of every account for their regions (the recount's 2 rows "
        "in one 4 KB unit: 0.5 more each 4 KB of rows) and the version of their one region (0.5 "
        "a region more)",
    ),
    "wru_per_pricing_hour": F(0.0, "hour with no new price file", "nothing"),
    # --- the read API ---------------------------------------------------------------------------
    "rru_per_api_request": F(
        3.93,
        "read API request",
        "the web app's pages each asked once (unread badge, cost graph and its cost jumps, "
        "audit log, EC2 events, notifications, accounts): 27.5 RRU for 7 requests, the audit "
        "log's page of 100 records 21.5 of it",
    ),
    "api_bytes_per_request": F(
        4301.0, "read API request", "the same 7 answers' bodies as sent: 30 KB"
    ),
    "api_log_bytes_per_request": F(
        352.0, "read API request", "the API's access log: 2.5 KB for the 7 requests"
    ),
    # --- the web app, from the browser's benchmark and the build ----------------------------
    "web_bytes_per_visit": F(
        39_000.0,
        "visit of the web app",
        "benchmarks/web.py's last run (docs/benchmarks.md): 39.0 KB shipped, compressed, on a "
        "fresh load",
        recounted=False,
    ),
    "web_files": F(
        18.0,
        "visit of the web app",
        "the files `kopter web build` writes, its licence file left out (tests/test_deploy_cost.py"
        " counts them), each fetched on a fresh load",
        recounted=False,
    ),
    # --- task times: a worker process's seconds, through a real worker against moto -------------
    "seconds_per_record": F(
        0.009,
        "CloudTrail record",
        "benchmarks/ingest.py end to end, 2026-12-06: 222 records/s through a worker of 2 "
        "processes, files of 2,500 records (load average 14 on 2 cores)",
        recounted=False,
    ),
    "seconds_per_file": F(
        0.68,
        "CloudTrail log file",
        "tests/support/recount.py's worker log, 2026-12-06: ingest_object of a 50-record file "
        "took 1.13 s once its process had its sessions (the first on each took 7-8 s), less 50 "
        "records at benchmarks/ingest.py's 0.009 s",
        recounted=False,
    ),
    "seconds_per_region_hour": F(
        3.10,
        "account-region-hour",
        "benchmarks/describer.py, 2026-12-06 (KOPTER_BENCH_ACCOUNTS=20: 80 regions of 25 "
        "instances): a task took 3.10 s of a worker process in an hour with no change, waiting "
        "included (load average 14-16 on 2 cores)",
        recounted=False,
    ),
    "seconds_per_change": F(
        0.049,
        "instance change",
        "benchmarks/describer.py, the same run: 4.32 s a task in the first run, every instance "
        "new, against 3.10 s: 1.22 s more for 25 launches",
        recounted=False,
    ),
    "seconds_per_instance_aggregation": F(
        0.0518,
        "instance, each aggregator run",
        "benchmarks/aggregator.py, 2026-12-06: 51.83 s for a tenant's 1,000 instances and 3,977 "
        "events of a day (the day's first hour, which reads the whole day)",
        recounted=False,
    ),
    "seconds_per_backup_region": F(
        2.49,
        "account-region, every 12 hours",
        "tests/support/recount.py's worker log, 2026-12-06 (no benchmark): back_up_account_region"
        " of 25 instances, 5 of them snapshotted, 2.49 s (median of 2)",
        recounted=False,
    ),
    "seconds_per_audited_record": F(
        0.000292,
        "record of the day audited",
        "benchmarks/audit.py, 2026-12-06 (KOPTER_BENCH_EVENTS=20000): 3,419 records/s with all "
        "44 rules; its reads are left out (moto's Query scans the whole table)",
        recounted=False,
    ),
    "seconds_per_pricing_hour": F(
        0.29,
        "hour with no new price file",
        "tests/support/recount.py's worker log, 2026-12-06 (no benchmark of it): "
        "refresh_price_list 0.29 s",
        recounted=False,
    ),
}

# Beat's entries (beat_schedule.py), each a message a firing: pricing, the describer and the
# aggregator hourly, backups every 12 hours, the audit daily; each describer run's chord sends
# one more (its aggregation). `tests/test_deploy_cost.py` holds this to the schedule.
BEAT_MESSAGES_PER_DAY = 24 + 24 + 24 + 2 + 1
CHORD_MESSAGES_PER_DAY = 24
# Backup runs a day (beat's entry every 12 hours).
BACKUPS_PER_DAY = 2
# Aggregator runs an hour: the describer's chord, and beat's entry at :40.
AGGREGATIONS_PER_HOUR = 2
# Days audited a day: beat's run at 23:00 digests yesterday again and today.
AUDITS_PER_DAY = 2


def value(name: str) -> float:
    return FIGURES[name].value
