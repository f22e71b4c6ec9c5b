"""CloudTrail log objects: which S3 keys are log files, and which account they belong to.

CloudTrail writes ``[prefix/]AWSLogs/<account>/CloudTrail/<region>/YYYY/MM/DD/<file>`` for a
trail of one account and ``[prefix/]AWSLogs/<org-id>/<account>/CloudTrail/…`` for an
organization trail; digest files go to ``…/CloudTrail-Digest/…`` and are not logs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

LOG_KEY = re.compile(
    r"^(?:(?P<prefix>.+)/)?AWSLogs/(?:(?P<org>o-[a-z0-9]+)/)?(?P<account>\d{12})/"
    r"CloudTrail/(?P<region>[a-z0-9-]+)/(?P<date>\d{4}/\d{2}/\d{2})/"
    r"(?P=account)_CloudTrail_(?P=region)_\d{8}T\d{4}Z_[A-Za-z0-9]{16}\.json\.gz$"
)


@dataclass(frozen=True)
class LogObject:
    bucket: str
    key: str
    account_id: str
    region: str
    prefix: str | None
    org_id: str | None

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def log_object(bucket: str, key: str) -> LogObject | None:
    """The log object at ``key``, or None if the key is not a CloudTrail log file (a digest
    file, a folder marker, anything else someone put in the bucket)."""
    match = LOG_KEY.match(key)
    if match is None:
        return None
    return LogObject(
        bucket=bucket,
        key=key,
        account_id=match["account"],
        region=match["region"],
        prefix=match["prefix"],
        org_id=match["org"],
    )


def logs_root(prefix: str | None) -> str:
    """Where a trail with this key prefix writes: every log of every layout lies below it."""
    return f"{prefix}/AWSLogs/" if prefix else "AWSLogs/"
