"""One CloudTrail log object into its tenant's audit log, exactly once.

Exactly once without coordination: every item's key is ``eventTime#eventID`` under the tenant, so
a file delivered twice, a record in two files, or a worker killed half-way through a file and the
file run again all write the same items. A marker in the Global table
(``ingested#s3://bucket/key`` with the object's ETag) lets a redelivered notification skip a file
already done instead of writing it again.

As they are written, the records are judged against the tenant's detection rules
(``kopter.detections``): each record a rule matches is a finding, stored once and notified at once
through the caller's ``notify`` (the task layer's, or the command line's).

Refusals are final and recorded (``refused#s3://bucket/key``, with the reason): an account nobody
registered, a bucket not registered for the account, corrupt gzip, a file that is not CloudTrail's.
Retrying them would never help, so the task ends normally and the message is deleted. Transient
failures (throttling, a network error) raise, and SQS delivers the message again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError
from isal import isal_zlib
from isal.igzip_lib import IsalError
from pynamodb.exceptions import DoesNotExist

from kopter import accounts, dynamo
from kopter.cloudtrail import records
from kopter.cloudtrail.objects import LogObject, log_object
from kopter.crossaccount import AssumeRoleFailed, CrossAccountSessions
from kopter.detections import findings, tenant_rules
from kopter.detections.findings import Notify
from kopter.ec2 import events as ec2_events
from kopter.errors import Refused
from kopter.settings import Settings
from kopter.tables import AuditLogEvent, AwsAccount, GlobalItem

log = logging.getLogger(__name__)

MARKER_DAYS = 30  # markers outlive any redelivery or backfill overlap
GZIP_MAGIC = b"\x1f\x8b"
# What became of an object (IngestResult.status).
INGESTED, DUPLICATE, REFUSED, SKIPPED = "ingested", "duplicate", "refused", "skipped"


@dataclass
class IngestResult:
    source: str
    status: str
    records: int = 0
    written: int = 0
    rejected: list[str] = field(default_factory=list)
    reason: str | None = None
    shape: str | None = None  # how the records were written down (records.LOG_FILE, …)
    findings: int = 0  # records that rules matched, found for the first time

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def ingest_object(
    bucket: str, key: str, sessions: CrossAccountSessions, settings: Settings, notify: Notify
) -> IngestResult:
    """Read one log object with its account's role and write its records."""
    source = f"s3://{bucket}/{key}"
    obj = log_object(bucket, key)
    if obj is None:
        log.debug("skipping %s: not a CloudTrail log file", source)
        return IngestResult(source, SKIPPED, reason="not a CloudTrail log file")
    try:
        account = _registered_account(obj)
        s3 = sessions.client(accounts.target(account), "s3", settings.region)
        downloaded = download(s3, bucket, key, _ingested_etag(source), settings.ingest_max_bytes)
        if downloaded is None:
            log.info("%s was already ingested: skipped", source)
            return IngestResult(source, DUPLICATE)
        etag, document = downloaded
        decoded = records.decode(decompress(document, settings.ingest_max_bytes))
    except (Refused, AssumeRoleFailed) as e:
        return refuse(source, str(e))
    result = write(decoded, account.tenant_id, source, settings, notify)
    owner = {"tenant_id": account.tenant_id, "account_id": account.account_id}
    _mark(GlobalItem.ingested_key(source), {"etag": etag, "records": result.records, **owner})
    return result


def ingest_document(
    document: bytes,
    tenant_id: str,
    allowed_accounts: Iterable[str],
    source: str,
    settings: Settings,
    notify: Notify,
) -> IngestResult:
    """Write records already in hand (``kopter ingest``), in any shape ``records.decode``
    reads. Every record must belong to one of the tenant's accounts: a file is never a way into
    another tenant's log."""
    decoded = records.decode(decompress(document, settings.ingest_max_bytes))
    allowed = set(allowed_accounts)
    foreign = sorted({records.account_of(r) for r in decoded.records} - allowed)
    if foreign:
        raise Refused(
            f"{source} has records of account(s) {', '.join(foreign)}, not connected to this "
            "tenant: connect them first (`kopter accounts add`)"
        )
    return write(decoded, tenant_id, source, settings, notify)


def write(
    decoded: records.Decoded, tenant_id: str, source: str, settings: Settings, notify: Notify
) -> IngestResult:
    """Write the records, then judge them: a finding is stored only once its record is."""
    expires = int((datetime.now(UTC) + timedelta(days=settings.audit_retention_days)).timestamp())
    items = unique_items(records.items(decoded.records, tenant_id, source, expires))
    written = dynamo.batch_put(AuditLogEvent.Meta.table_name, items, settings)
    # The calls that changed an instance are EC2 events too, with who made them.
    for record in decoded.records:
        for account_id, change, principal in ec2_events.from_cloudtrail(record):
            ec2_events.record(tenant_id, account_id, change, ec2_events.CLOUDTRAIL, principal)
    matches = findings.judge(decoded, tenant_rules.active(tenant_id, settings))
    found = findings.store(tenant_id, matches, source, settings, notify)
    for reason in decoded.rejected[:10]:
        log.warning("%s: rejected %s", source, reason)
    log.info(
        "%s: %d records, %d written, %d rejected, %d new findings",
        source,
        len(decoded.records),
        written,
        len(decoded.rejected),
        found,
    )
    return IngestResult(
        source,
        INGESTED,
        len(decoded.records),
        written,
        decoded.rejected,
        shape=decoded.shape,
        findings=found,
    )


def unique_items(items: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Each event key once: a file may hold a record twice, and one BatchWriteItem call may
    not name a key twice."""
    seen: set[str] = set()
    for item in items:
        key = item["event_key"]["S"]
        if key not in seen:
            seen.add(key)
            yield item


def refuse(source: str, reason: str) -> IngestResult:
    """Record a final refusal and say so; the message that brought it is done with."""
    log.warning("refused %s: %s", source, reason)
    _mark(GlobalItem.refused_key(source), {"reason": reason})
    return IngestResult(source, REFUSED, reason=reason)


def _registered_account(obj: LogObject) -> AwsAccount:
    tenant_id = accounts.account_owner(obj.account_id)
    if tenant_id is None:
        raise Refused(f"account {obj.account_id} is not registered with kopter")
    try:
        account = AwsAccount.get(tenant_id, obj.account_id, consistent_read=True)
    except DoesNotExist:
        raise Refused(f"account {obj.account_id} is not registered with kopter") from None
    if account.removed_at is not None:
        raise Refused(f"account {obj.account_id} was disconnected from kopter")
    if account.cloudtrail_bucket != obj.bucket:
        raise Refused(
            f"bucket {obj.bucket} is not the CloudTrail bucket registered for account "
            f"{obj.account_id}"
        )
    if (account.cloudtrail_prefix or None) != obj.prefix:
        raise Refused(
            f"prefix {obj.prefix!r} is not the CloudTrail prefix registered for account "
            f"{obj.account_id} ({account.cloudtrail_prefix!r})"
        )
    return account


def download(
    s3: Any, bucket: str, key: str, ingested_etag: str | None, limit: int
) -> tuple[str, bytes] | None:
    """The object's ETag and bytes, or None when it is still the version already ingested
    (S3 answers 304 to If-None-Match without sending the body again)."""
    conditional = {"IfNoneMatch": f'"{ingested_etag}"'} if ingested_etag else {}
    try:
        response = s3.get_object(Bucket=bucket, Key=key, **conditional)
    except ClientError as e:
        code = e.response["Error"]["Code"]
        if code in ("304", "NotModified"):
            return None
        if code in ("NoSuchKey", "NoSuchBucket", "AccessDenied", "403", "404"):
            raise Refused(f"cannot read the object: {code}") from None
        raise
    size = int(response["ContentLength"])
    if size > limit:
        response["Body"].close()
        raise Refused(f"object of {size:,} bytes is over the {limit:,}-byte limit")
    return str(response["ETag"]).strip('"'), response["Body"].read()


def decompress(document: bytes, limit: int) -> bytes:
    """Gunzip ``document`` (plain JSON passes through), every member of it as ``gzip -d`` does,
    refusing more than ``limit`` bytes of output: a small object must not be able to expand into
    all of a worker's memory."""
    if not document.startswith(GZIP_MAGIC):
        return document
    members: list[bytes] = []
    size = 0
    rest = document
    while True:
        inflater = isal_zlib.decompressobj(16 + isal_zlib.MAX_WBITS)  # zlib's API, 2-3x faster
        try:
            out = inflater.decompress(rest, limit + 1 - size)
        except IsalError as e:  # type: ignore[misc]  # the stub calls it an instance
            raise Refused(f"corrupt gzip: {e}") from None
        size += len(out)
        if size > limit:
            raise Refused(f"decompresses to more than the {limit:,}-byte limit")
        if not inflater.eof:
            raise Refused("corrupt gzip: truncated")
        members.append(out)
        rest = inflater.unused_data
        if not rest.strip(b"\0"):  # the end, or the zeros some writers pad with
            break
        if not rest.startswith(GZIP_MAGIC):
            raise Refused(f"corrupt gzip: {len(rest):,} bytes after the last member")
    return members[0] if len(members) == 1 else b"".join(members)


def _ingested_etag(source: str) -> str | None:
    try:
        marker = GlobalItem.get(GlobalItem.ingested_key(source), consistent_read=True)
    except DoesNotExist:
        return None
    return str(marker.value["etag"]) if marker.value else None


def _mark(key: str, value: dict[str, Any]) -> None:
    now = datetime.now(UTC)
    GlobalItem(
        key, value=value, updated_at=now, expires_at=now + timedelta(days=MARKER_DAYS)
    ).save()
