"""`kopter ingest`: CloudTrail records into a tenant's audit log now, from files or S3."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import click

from kopter import accounts
from kopter.cli.output import emit, json_option, tenant_option
from kopter.errors import KopterError, Refused
from kopter.settings import get_settings

MAX_SHOWN = 10  # rejected records listed after a summary; the rest are counted


@click.command()
@click.argument("location")
@tenant_option
@json_option
def ingest(location: str, tenant: str, as_json: bool) -> None:
    """Ingest CloudTrail records now, inline: a file, or every file under a directory or prefix.

    LOCATION is a local file or directory, s3://bucket/key, or s3://bucket/prefix/ (every
    object under it). A file is a log file as a trail delivers it, a JSON array of records,
    JSON lines (a record a line), or the output of `aws cloudtrail lookup-events`; gzipped or
    not. Every record must belong to one of the tenant's accounts. The same keys as the
    workers: a record ingested twice, or exported and later delivered by the trail, is one
    item. A record that does not decode is rejected alone and counted."""
    from kopter.cloudtrail import exports
    from kopter.crossaccount import shared_sessions
    from tasks.notifications import raise_notification

    settings = get_settings()
    owner = accounts.resolve_tenant(tenant)
    importer = exports.Importer(
        owner.tenant_id,
        accounts.list_accounts(owner.tenant_id),
        shared_sessions(settings),
        settings,
        raise_notification,
    )
    if location.startswith("s3://"):
        bucket, _, key = location[5:].partition("/")
        if not bucket:
            raise KopterError(f"{location}: give s3://bucket/key or s3://bucket/prefix/")
        s3 = importer.s3_client(bucket)
        if key and not key.endswith("/"):
            _one(importer.s3_object(s3, bucket, key), as_json)
            return
        work = [
            (f"s3://{bucket}/{k}", partial(importer.s3_object, s3, bucket, k))
            for k in exports.s3_keys(s3, bucket, key)
        ]
    else:
        path = Path(location)
        if path.is_file():
            _one(importer.local_file(path), as_json)
            return
        if not path.is_dir():
            raise KopterError(f"{location}: no such file or directory")
        work = [(str(p), partial(importer.local_file, p)) for p in exports.local_files(path)]
    if not work:
        raise KopterError(f"{location}: no file under it")
    _many(location, work, as_json)


def _one(result: Any, as_json: bool) -> None:
    from kopter.cloudtrail.ingest import REFUSED

    if as_json:
        emit([result.as_dict()], True, [])
    else:
        click.echo(_line(result))
        for reason in result.rejected[:MAX_SHOWN]:
            click.echo(f"  rejected {reason}")
    if result.status == REFUSED:
        sys.exit(1)


def _line(result: Any) -> str:
    return (
        f"{result.source}: {result.status}, {result.records} records, "
        f"{result.written} written, {len(result.rejected)} rejected, {result.findings} findings"
        + (f" ({result.reason or result.shape})" if result.reason or result.shape else "")
    )


def _many(location: str, work: Sequence[tuple[str, Callable[[], Any]]], as_json: bool) -> None:
    """Each file in turn, a progress line for each, then a summary: files, records, and every
    refusal with its reason."""
    from kopter.cloudtrail.ingest import REFUSED, IngestResult

    records = written = found = 0
    rejected: list[str] = []
    refused: list[IngestResult] = []
    for n, (source, run) in enumerate(work, 1):
        try:
            result = run()
        except Refused as e:
            result = IngestResult(source, REFUSED, reason=str(e))
        records += result.records
        written += result.written
        found += result.findings
        rejected += [f"{result.source} {reason}" for reason in result.rejected]
        if result.status == REFUSED:
            refused.append(result)
        if as_json:
            emit([result.as_dict()], True, [])
        click.echo(f"ingest: {n}/{len(work)} files, {records:,} records: {_line(result)}", err=True)
    summary = (
        f"{location}: {len(work)} files, {records:,} records, {written:,} written, "
        f"{len(rejected):,} rejected, {len(refused)} refused, {found:,} findings"
    )
    click.echo(summary, err=as_json)
    for result in refused:
        click.echo(f"  refused {result.source}: {result.reason}", err=as_json)
    for reason in rejected[:MAX_SHOWN]:
        click.echo(f"  rejected {reason}", err=as_json)
    if len(rejected) > MAX_SHOWN:
        click.echo(f"  … and {len(rejected) - MAX_SHOWN:,} more rejected", err=as_json)
    if refused:
        sys.exit(1)
