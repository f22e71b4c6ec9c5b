"""A deployed stack of kopter's: its outputs, and its web bucket filled with the app."""

from __future__ import annotations

import mimetypes
import time
from collections.abc import Callable
from pathlib import Path

from botocore.exceptions import ClientError

from kopter import aws
from kopter.errors import Refused
from kopter.settings import Settings

# What a browser must fetch anew on each visit: the page and where it finds the API. The rest
# is fetched through them, so a new deploy reaches every browser on its next load.
NOT_CACHED = ("index.html", "config.json")


def outputs(settings: Settings, stack: str) -> dict[str, str]:
    cloudformation = aws.client("cloudformation", settings)
    try:
        [found] = cloudformation.describe_stacks(StackName=stack)["Stacks"]
    except ClientError as e:
        if e.response["Error"]["Code"] == "ValidationError":
            raise Refused(f"no stack {stack!r} in {settings.region}") from None
        raise
    status = found["StackStatus"]
    if not status.endswith("_COMPLETE") or "ROLLBACK" in status or "DELETE" in status:
        raise Refused(f"stack {stack} is {status}")
    return {o["OutputKey"]: o["OutputValue"] for o in found.get("Outputs", [])}


def publish(
    settings: Settings,
    folder: Path,
    bucket: str,
    distribution: str,
    progress: Callable[[str], None] = lambda line: None,
) -> int:
    """Upload every file of ``folder`` to ``bucket`` and have CloudFront drop what it cached;
    the number of files."""
    s3 = aws.client("s3", settings)
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    for i, path in enumerate(files, 1):
        key = path.relative_to(folder).as_posix()
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        cache = "no-cache" if key in NOT_CACHED else "max-age=300"
        s3.put_object(
            Bucket=bucket, Key=key, Body=path.read_bytes(), ContentType=kind, CacheControl=cache
        )
        progress(f"{i}/{len(files)} s3://{bucket}/{key}")
    aws.client("cloudfront", settings).create_invalidation(
        DistributionId=distribution,
        InvalidationBatch={
            "Paths": {"Quantity": 1, "Items": ["/*"]},
            "CallerReference": f"kopter-{time.time_ns()}",
        },
    )
    return len(files)
