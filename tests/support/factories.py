"""CloudTrail log files made from the real samples, for volume: every record is a real record of
`tests/fixtures/real/cloudtrail/` with a new eventID, time and account."""

from __future__ import annotations

import copy
import gzip
import json
import random
import uuid
from datetime import UTC, datetime, timedelta
from functools import cache

from tests.support.samples import CLOUD_SNITCH_FILE, STRATUS_FILE


@cache
def templates() -> list[dict]:
    snitch = json.loads(gzip.decompress(CLOUD_SNITCH_FILE.read_bytes()))["Records"]
    return snitch + json.loads(STRATUS_FILE.read_text())


def log_records(
    count: int, account: str, day: datetime, seed: int = 0, pool: list[dict] | None = None
) -> list[dict]:
    """``count`` records drawn from ``pool`` (the real samples by default) over the day."""
    rng = random.Random(seed)
    pool = pool or templates()
    start = day.replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=UTC)
    out = []
    for _ in range(count):
        record = dict(rng.choice(pool))
        moment = start + timedelta(seconds=rng.randrange(86_400))
        record["eventTime"] = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
        record["eventID"] = str(uuid.UUID(int=rng.getrandbits(128)))
        record["recipientAccountId"] = account
        out.append(record)
    return out


def log_file(records: list[dict]) -> bytes:
    """A log file as CloudTrail delivers it: compact JSON, gzipped."""
    return gzip.compress(json.dumps({"Records": records}, separators=(",", ":")).encode(), 6)


def log_key(account: str, region: str, when: datetime, prefix: str | None = None) -> str:
    suffix = uuid.uuid4().hex[:16]
    key = (
        f"AWSLogs/{account}/CloudTrail/{region}/{when:%Y/%m/%d}/"
        f"{account}_CloudTrail_{region}_{when:%Y%m%dT%H%M}Z_{suffix}.json.gz"
    )
    return f"{prefix}/{key}" if prefix else key


def of_account(records: list[dict], account: str) -> list[dict]:
    """The real records, as if they were another account's."""
    out = copy.deepcopy(records)
    for r in out:
        r["recipientAccountId"] = account
        r.get("userIdentity", {})["accountId"] = account
    return out
