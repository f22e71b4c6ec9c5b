"""Real CloudTrail files through the decoder and normalizer."""

import gzip
import json

import pytest

from kopter.cloudtrail import records
from tests.support.samples import CLOUD_SNITCH_FILE, STRATUS_FILE

pytestmark = pytest.mark.unit


def _items(document: bytes) -> dict[str, dict]:
    decoded = records.decode(document)
    assert decoded.rejected == []
    items = records.items(decoded.records, "tenant-1", "s3://b/k", 1_900_000_000)
    return {item["event_id"]["S"]: item for item in items}


def test_real_log_file_normalizes_every_field():
    document = gzip.decompress(CLOUD_SNITCH_FILE.read_bytes())
    items = _items(document)
    assert items.keys() == {r["eventID"] for r in json.loads(document)["Records"]}
    first = next(i for i in items.values() if i["event_name"]["S"] == "UpdateInstanceInformation")
    assert first["event_time"] == {"S": "2025-03-06T02:25:06Z"}
    assert first["event_key"]["S"] == f"2025-03-06T02:25:06Z#{first['event_id']['S']}"
    assert first["tenant_id"] == {"S": "tenant-1"}
    assert first["account_id"] == {"S": "222222222222"}
    assert first["tenant_account"] == {"S": "tenant-1#222222222222"}
    assert first["event_source"] == {"S": "ssm.amazonaws.com"}
    assert first["region"] == {"S": "us-east-1"}
    assert first["principal_type"] == {"S": "AssumedRole"}
    arn = "arn:aws:sts::222222222222:assumed-role/ecs-cluster-instance/i-06125b883c50e9d63"
    assert first["principal_arn"] == {"S": arn}
    assert first["tenant_principal"] == {"S": "tenant-1#" + arn}
    assert first["session_issuer"] == {"S": "arn:aws:iam::222222222222:role/ecs-cluster-instance"}
    assert first["source_ip"] == {"S": "98.80.15.110"}
    assert first["user_agent"]["S"].startswith("aws-sdk-go/1.55.5")
    request = json.loads(first["request"]["S"])
    assert request["instanceId"] == "i-06125b883c50e9d63"
    # Compact, where the delivered file was pretty-printed.
    assert first["request"]["S"] == json.dumps(request, separators=(",", ":"), ensure_ascii=False)
    assert first["expires_at"] == {"N": "1900000000"}
    services = [i for i in items.values() if i["principal_type"]["S"] == "AWSService"]
    assert services and all("invoked_by" in i for i in services)


def test_real_denied_calls_keep_their_errors():
    sample = json.loads(STRATUS_FILE.read_text())
    items = _items(json.dumps({"Records": sample}).encode())
    assert items.keys() == {r["eventID"] for r in sample}
    denied = [i for i in items.values() if i.get("error_code")]
    assert len(denied) == 32
    assert {i["error_code"]["S"] for i in denied} == {
        "Client.UnauthorizedOperation",
        "AccessDenied",
    }
    for record in sample:  # the error as the record gives it, whole
        item = items[record["eventID"]]
        assert item.get("error_message", {}).get("S") == record.get("errorMessage")
    password_data = [i for i in items.values() if i["event_name"]["S"] == "GetPasswordData"]
    assert len(password_data) == 30
    assert all(i["read_only"] == {"BOOL": True} for i in password_data)
    assert {i["account_id"]["S"] for i in items.values()} == {"457448411975"}


def test_sparse_records_are_normal_and_bad_ones_are_rejected_alone():
    document = json.dumps(
        {
            "Records": [
                {
                    "eventTime": "2026-01-01T00:00:00Z",
                    "eventID": "a",
                    "eventSource": "s3.amazonaws.com",
                    "eventName": "GetObject",
                    "awsRegion": "us-east-1",
                    "userIdentity": {"accountId": "1"},
                    "requestParameters": None,
                },
                {
                    "eventTime": "2026-01-01T00:00:01Z",
                    "eventSource": "x",
                    "eventName": "NoId",
                    "awsRegion": "us-east-1",
                },
                {
                    "eventTime": "2026-01-01T00:00:02Z",
                    "eventID": 7,
                    "eventSource": "x",
                    "eventName": "BadId",
                    "awsRegion": "us-east-1",
                },
            ]
        }
    ).encode()
    decoded = records.decode(document)
    assert [r.eventID for r in decoded.records] == ["a"]
    assert len(decoded.rejected) == 2 and "record 1" in decoded.rejected[0]
    [item] = records.items(decoded.records, "t", "src", None)
    assert "request" not in item and "principal_type" not in item and "expires_at" not in item
    assert item["account_id"] == {"S": "1"}


def test_record_over_the_item_limit_is_kept_truncated():
    huge = {"blob": "x" * 1_000_000}
    document = json.dumps(
        {
            "Records": [
                {
                    "eventTime": "2026-01-01T00:00:00Z",
                    "eventID": "big",
                    "eventSource": "s3.amazonaws.com",
                    "eventName": "PutObject",
                    "awsRegion": "us-east-1",
                    "recipientAccountId": "123456789012",
                    "requestParameters": huge,
                    "responseElements": {"ok": True},
                }
            ]
        }
    ).encode()
    [item] = records.items(records.decode(document).records, "t", "src", None)
    assert item["truncated"] == {"BOOL": True}
    assert item["response"] == {"S": '{"ok":true}'}
    size = sum(len(k) + len(json.dumps(v)) for k, v in item.items())
    assert size < 400_000


@pytest.mark.parametrize("document", [b"\x00\x01garbage", b'{"NotRecords": []}', b"[1,2]"])
def test_not_a_log_file(document):
    with pytest.raises(records.NotALogFile):
        records.decode(document)
