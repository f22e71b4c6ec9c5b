"""`kopter ingest` of the shapes people hold CloudTrail records in outside a trail's bucket: a
JSON array (the real Stratus Red Team sample is one), JSON lines, `aws cloudtrail lookup-events`
output; a file, a directory, an S3 object or prefix; and a file with a bad record or spread over
several gzip members. Through the real `kopter` command, a real `-Q ingest` worker for what the
trail delivers, and the audit log read back."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from kopter import aws
from kopter.settings import get_settings
from tests.conftest import customer_client, wait_for
from tests.support.factories import log_file, log_key, of_account
from tests.support.samples import STRATUS_FILE
from tests.support.trails import audit, marker, notify, s3_event

pytestmark = pytest.mark.long

STRATUS = json.loads(STRATUS_FILE.read_text())
STRATUS_ACCOUNT = "457448411975"
DEEP = 5_000  # past Python's recursion limit, which msgspec keeps to


def lookup_events(records: list[dict[str, Any]]) -> dict[str, Any]:
    """What `aws cloudtrail lookup-events` prints for these records: each event's record is the
    JSON text in its CloudTrailEvent."""
    return {
        "Events": [
            {
                "EventId": r["eventID"],
                "EventName": r["eventName"],
                "ReadOnly": str(r.get("readOnly", "false")).lower(),
                "AccessKeyId": r.get("userIdentity", {}).get("accessKeyId", ""),
                "EventTime": r["eventTime"].replace("Z", "+00:00"),
                "EventSource": r["eventSource"],
                "Username": r.get("userIdentity", {}).get("userName", ""),
                "Resources": [],
                "CloudTrailEvent": json.dumps(r),
            }
            for r in records
        ]
    }


def json_lines(records: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in records).encode()


def test_each_shape_of_the_real_sample_is_one_item_per_record(kopter, trail, tmp_path):
    lines = tmp_path / "stratus.jsonl.gz"
    lines.write_bytes(gzip.compress(json_lines(STRATUS)))
    looked_up = tmp_path / "lookup-events.json"
    looked_up.write_text(json.dumps(lookup_events(STRATUS), indent=4))
    for path, shape in (
        (STRATUS_FILE, "JSON array"),  # the sample as it is published
        (lines, "JSON lines"),
        (looked_up, "lookup-events output"),
    ):
        out = kopter("ingest", str(path), "--tenant", trail.tenant).stdout
        assert f"ingested, 34 records, 34 written, 0 rejected, 0 findings ({shape})" in out, out
        # Read back before the next shape rewrites the same items (their source says whose
        # they are): the same normalization as a delivered file's.
        rows = audit(kopter, trail.tenant, "--account", STRATUS_ACCOUNT)
        assert sorted(r["event_id"] for r in rows) == sorted(r["eventID"] for r in STRATUS)
        by_id = {r["event_id"]: r for r in rows}
        for record in STRATUS:
            row = by_id[record["eventID"]]
            assert row["source_object"] == path.as_uri(), shape
            assert (row["event_time"], row["event_name"], row["error_code"]) == (
                record["eventTime"],
                record["eventName"],
                record.get("errorCode"),
            )
            assert row["principal_arn"] == record["userIdentity"].get("arn")
            request = record.get("requestParameters")
            assert (json.loads(row["request"]) if row["request"] else None) == request

    other = kopter.new_tenant()
    refused = kopter("ingest", str(looked_up), "--tenant", other, ok=False)
    assert f"account(s) {STRATUS_ACCOUNT}, not connected to this tenant" in refused.stderr
    assert audit(kopter, other) == []
    garbage = tmp_path / "notes.txt"
    garbage.write_text("<html>not records</html>")
    refused = kopter("ingest", str(garbage), "--tenant", trail.tenant, ok=False)
    assert "not a CloudTrail log file" in refused.stderr


def _export_folder(root: Path, tenant_account: str) -> dict[str, bytes]:
    """Files as an incident responder collects them: every shape, gzipped or not, in folders;
    beside them a trail's digest, a note, and another account's records."""
    a, b, c = (
        of_account(part, tenant_account) for part in (STRATUS[:10], STRATUS[10:20], STRATUS[20:])
    )
    files = {
        "day1/array.json": json.dumps(a).encode(),
        "day1/lines.jsonl.gz": gzip.compress(json_lines(b)),
        "day2/lookup-events.json.gz": gzip.compress(json.dumps(lookup_events(c)).encode()),
        "day2/README.txt": b"collected by the on-call engineer",
        "day2/stranger.json": json.dumps(of_account(a, "999999999999")).encode(),
        "AWSLogs/x/CloudTrail-Digest/us-east-1/digest.json.gz": gzip.compress(b"{}"),
    }
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return files


def _assert_summary(result: Any, location: str, prefix: str, source: str) -> None:
    """``prefix``: how the command names the files under ``location``; ``source``: how their
    items do."""
    assert result.returncode == 1, result.stderr  # two files refused
    assert result.stdout.splitlines() == [
        f"{location}: 5 files, 34 records, 34 written, 0 rejected, 2 refused, 0 findings",
        f"  refused {prefix}day2/README.txt: not a CloudTrail log file: not JSON",
        f"  refused {prefix}day2/stranger.json: {source}day2/stranger.json has records of "
        "account(s) 999999999999, not connected to this tenant: connect them first "
        "(`kopter accounts add`)",
    ]
    progress = result.stderr.splitlines()
    assert [line.split(" files,")[0] for line in progress] == [
        f"ingest: {n}/5" for n in range(1, 6)
    ]
    assert progress[0].endswith(
        "array.json: ingested, 10 records, 10 written, 0 rejected, 0 findings (JSON array)"
    )


def test_a_directory_and_an_s3_prefix_take_every_file_under_them(kopter, tmp_path):
    c = kopter.connect()
    files = _export_folder(tmp_path / "incident", c.account)
    location = str(tmp_path / "incident")
    result = kopter("ingest", location, "--tenant", c.tenant, ok=None)
    _assert_summary(result, location, f"{location}/", f"{Path(location).as_uri()}/")
    rows = audit(kopter, c.tenant)
    assert sorted(r["event_id"] for r in rows) == sorted(r["eventID"] for r in STRATUS)
    assert {r["account_id"] for r in rows} == {c.account}

    # The same files in a bucket of kopter's own account, under a prefix.
    s3 = aws.client("s3", get_settings())
    s3.create_bucket(Bucket="incident-exports")
    for name, data in files.items():
        s3.put_object(Bucket="incident-exports", Key=f"case-42/{name}", Body=data)
    s3.put_object(Bucket="incident-exports", Key="case-42/day2/", Body=b"")  # a folder marker
    s3.put_object(Bucket="incident-exports", Key="case-43/other.json", Body=b"[]")
    prefix = "s3://incident-exports/case-42/"
    result = kopter("ingest", prefix, "--tenant", c.tenant, ok=None)
    _assert_summary(result, prefix, prefix, prefix)
    rows = audit(kopter, c.tenant)
    assert len(rows) == 34  # the same records again: the same items
    assert {r["source_object"] for r in rows} == {
        f"{prefix}day1/array.json",
        f"{prefix}day1/lines.jsonl.gz",
        f"{prefix}day2/lookup-events.json.gz",
    }
    one = kopter("ingest", f"{prefix}day1/array.json", "--tenant", c.tenant, "--json")
    [row] = [json.loads(line) for line in one.stdout.splitlines()]
    assert (row["status"], row["records"], row["shape"]) == ("ingested", 10, "JSON array")
    empty = kopter("ingest", "s3://incident-exports/case-44/", "--tenant", c.tenant, ok=False)
    assert "s3://incident-exports/case-44/: no file under it" in empty.stderr


def test_records_exported_then_delivered_by_the_trail_are_one_item_each(kopter, workers, tmp_path):
    c = kopter.connect("--cloudtrail-bucket", "exported-trail")
    records = of_account(STRATUS, c.account)
    export = tmp_path / "lookup-events.json"
    export.write_text(json.dumps(lookup_events(records)))
    assert "34 written" in kopter("ingest", str(export), "--tenant", c.tenant).stdout
    assert len(audit(kopter, c.tenant)) == 34

    # Later the trail delivers the same records, and the worker ingests them.
    s3 = customer_client(c, "s3")
    s3.create_bucket(Bucket="exported-trail")
    key = log_key(c.account, "us-east-1", datetime(2024, 7, 30, 21, 30, tzinfo=UTC))
    s3.put_object(Bucket="exported-trail", Key=key, Body=log_file(records))
    # The bridge sends the ingest task with this worker's time limit: the suite's 4 s (3 s
    # soft) ended a cold worker's first tasks at load average 12 (tests/test_ingest.py).
    worker = workers.start("ingest-exported", "ingest", env={"KOPTER_TASK_TIME_LIMIT": "60"})
    workers.wait_ready(worker)
    notify(s3_event("exported-trail", key))
    wait_for(lambda: marker("ingested", "exported-trail", key), 60, "the delivered file")
    rows = audit(kopter, c.tenant)
    assert sorted(r["event_id"] for r in rows) == sorted(r["eventID"] for r in records)
    assert {r["source_object"] for r in rows} == {f"s3://exported-trail/{key}"}


def test_a_bad_record_is_rejected_alone_and_every_gzip_member_is_read(kopter, tmp_path):
    c = kopter.connect()
    records = of_account(STRATUS[:5], c.account)
    surrogate = dict(records[1], eventName="\ud800")  # json.dumps writes "\ud800": no character
    deep = dict(records[3], requestParameters="DEEP")
    document = json.dumps({"Records": [records[0], surrogate, records[2], deep, records[4]]})
    document = document.replace('"DEEP"', "[" * DEEP + "]" * DEEP).encode()
    # Two gzip members, the JSON cut between them, as `gzip -d` reads them back.
    middle = len(document) // 2
    split = tmp_path / "two-members.json.gz"
    split.write_bytes(gzip.compress(document[:middle]) + gzip.compress(document[middle:]))
    out = kopter("ingest", str(split), "--tenant", c.tenant).stdout
    assert "ingested, 3 records, 3 written, 2 rejected, 0 findings (log file)" in out
    assert "  rejected record 1: JSON is malformed" in out
    assert "  rejected record 3: nested too deeply" in out
    rows = audit(kopter, c.tenant)
    assert sorted(r["event_id"] for r in rows) == sorted(records[i]["eventID"] for i in (0, 2, 4))
    # The same record alone in each shape: rejected alone there too.
    for shape, data in (
        ("JSON array", json.dumps([records[0], surrogate]).encode()),
        ("JSON lines", json_lines([surrogate, records[0]])),
        ("lookup-events output", json.dumps(lookup_events([records[0], surrogate])).encode()),
    ):
        path = tmp_path / "one-bad"
        path.write_bytes(gzip.compress(data))
        out = kopter("ingest", str(path), "--tenant", c.tenant).stdout
        assert f"ingested, 1 records, 1 written, 1 rejected, 0 findings ({shape})" in out
