"""Finding an account's log objects in its CloudTrail bucket, for backfill.

Both layouts are looked for under the registered prefix: ``AWSLogs/<account>/…`` (a trail of the
account) and ``AWSLogs/<org-id>/<account>/…`` (an organization trail).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

from kopter.cloudtrail.objects import LogObject, log_object, logs_root
from kopter.errors import Refused
from kopter.tables import AwsAccount


def log_roots(s3: Any, account: AwsAccount) -> list[str]:
    """The key prefixes under which CloudTrail writes this account's logs."""
    if not account.cloudtrail_bucket:
        raise Refused(f"account {account.account_id} has no CloudTrail bucket registered")
    base = logs_root(account.cloudtrail_prefix)
    roots = []
    pages = s3.get_paginator("list_objects_v2").paginate(
        Bucket=account.cloudtrail_bucket, Prefix=base, Delimiter="/"
    )
    for page in pages:
        for common in page.get("CommonPrefixes", []):
            name = common["Prefix"][len(base) :].rstrip("/")
            if name == account.account_id:
                roots.append(f"{base}{name}/")
            elif name.startswith("o-"):
                roots.append(f"{base}{name}/{account.account_id}/")
    return roots


def days(since: date, until: date) -> list[date]:
    return [since + timedelta(days=i) for i in range((until - since).days + 1)]


def objects_of_day(
    s3: Any, account: AwsAccount, root: str, region: str, day: date
) -> Iterator[LogObject]:
    prefix = f"{root}CloudTrail/{region}/{day:%Y/%m/%d}/"
    bucket = account.cloudtrail_bucket
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for entry in page.get("Contents", []):
            obj = log_object(str(bucket), entry["Key"])
            if obj is not None and obj.account_id == account.account_id:
                yield obj
