"""CloudTrail records ingested on request (`kopter ingest`): from a local file or directory, an
S3 object, or every object under an S3 prefix.

A file may be in any shape ``records.decode`` reads (a delivered log file, a JSON array of
records, JSON lines, `aws cloudtrail lookup-events` output), gzipped or not. Its records go
through the same normalization and keys as the workers' (``ingest.write``), so a record exported
and later delivered by the trail is one item. An object in CloudTrail's own layout in a bucket an
account of the tenant registered is ingested as the workers ingest it (``ingest.ingest_object``:
the account's role, the registered bucket and prefix, the ingested marker).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kopter import accounts, aws
from kopter.cloudtrail import ingest
from kopter.cloudtrail.objects import log_object
from kopter.crossaccount import CrossAccountSessions
from kopter.detections.findings import Notify
from kopter.errors import Refused
from kopter.settings import Settings
from kopter.tables import AwsAccount

DIGEST_FOLDER = "CloudTrail-Digest"  # the trail's integrity digests: no records in them


@dataclass
class Importer:
    """Writes the files it is given into one tenant's audit log. Each method raises
    ``Refused`` for a file it refuses, saying why."""

    tenant_id: str
    connected: list[AwsAccount]
    sessions: CrossAccountSessions
    settings: Settings
    notify: Notify  # raises each new finding's notice

    @property
    def account_ids(self) -> list[str]:
        return [a.account_id for a in self.connected]

    def local_file(self, path: Path) -> ingest.IngestResult:
        source = path.resolve().as_uri()
        size = path.stat().st_size
        if size > self.settings.ingest_max_bytes:
            raise Refused(
                f"{path}: file of {size:,} bytes is over the {self.settings.ingest_max_bytes:,}"
                "-byte limit"
            )
        try:
            document = path.read_bytes()
        except OSError as e:
            raise Refused(f"{path}: {e.strerror}") from None
        return ingest.ingest_document(
            document, self.tenant_id, self.account_ids, source, self.settings, self.notify
        )

    def s3_client(self, bucket: str) -> Any:
        """A bucket an account of the tenant registered for its trail is read with that
        account's role; any other with kopter's own credentials."""
        for account in self.connected:
            if account.cloudtrail_bucket == bucket:
                target = accounts.target(account)
                return self.sessions.client(target, "s3", self.settings.region)
        return aws.client("s3", self.settings)

    def s3_object(self, s3: Any, bucket: str, key: str) -> ingest.IngestResult:
        obj = log_object(bucket, key)
        if obj is not None and any(a.cloudtrail_bucket == bucket for a in self.connected):
            if obj.account_id not in self.account_ids:
                raise Refused(f"account {obj.account_id} is not connected to this tenant")
            return ingest.ingest_object(bucket, key, self.sessions, self.settings, self.notify)
        downloaded = ingest.download(s3, bucket, key, None, self.settings.ingest_max_bytes)
        assert downloaded is not None  # no ETag asked: never "not modified"
        source = f"s3://{bucket}/{key}"
        return ingest.ingest_document(
            downloaded[1], self.tenant_id, self.account_ids, source, self.settings, self.notify
        )


def is_digest(name: str) -> bool:
    return f"/{DIGEST_FOLDER}/" in f"/{name}"


def local_files(directory: Path) -> Iterator[Path]:
    """Every file under ``directory``, in order, digests left out."""
    for path in sorted(directory.rglob("*")):
        if path.is_file() and not is_digest(path.relative_to(directory).as_posix()):
            yield path


def s3_keys(s3: Any, bucket: str, prefix: str) -> Iterator[str]:
    """Every object under ``prefix``, in order, digests and folder markers left out."""
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for entry in page.get("Contents", []):
            key = entry["Key"]
            if not key.endswith("/") and not is_digest(key):
                yield key
