"""The daily audit: the real CloudTrail samples and a scripted day in the audit log, judged at
ingest, digested by a real `-Q audit,notifications` worker through `kopter run audit`, stored,
notified once, and shown by `kopter digest`."""

from __future__ import annotations

import gzip
import json
import uuid
from collections import Counter
from typing import Any

import pytest

from kopter.cloudtrail import ingest, records
from kopter.devstack import Child
from kopter.reads.notifications import NotificationsQuery, query
from kopter.settings import get_settings
from kopter.tables import AuditDigest
from tests.conftest import Kopter, Workers, wait_for
from tests.support.samples import CLOUD_SNITCH_FILE, STRATUS_FILE

pytestmark = pytest.mark.long

# The time limit travels with the message: the CLI's and the worker's must both allow it.
LONG = {"KOPTER_TASK_TIME_LIMIT": "60"}

STRATUS_DAY, SNITCH_DAY = "2024-07-30", "2025-03-06"
STRATUS_SESSION = (
    "arn:aws:sts::457448411975:assumed-role/stratus-red-team-ec2-get-password-data-role/"
    "aws-go-sdk-1722375070115152000"
)
CHRISTOPHE = "arn:aws:iam::457448411975:user/christophe"


def _snitch_records() -> list[dict[str, Any]]:
    return json.loads(gzip.decompress(CLOUD_SNITCH_FILE.read_bytes()))["Records"]


def _stratus_records() -> list[dict[str, Any]]:
    return json.loads(STRATUS_FILE.read_text())


def _write(tenant: str, log: list[dict[str, Any]], source: str) -> None:
    """Into the tenant's audit log through ingest's own writer. (`kopter ingest FILE` would need
    the samples' accounts connected to this tenant, and test_ingest's tenant owns them.)"""
    decoded = records.decode(json.dumps({"Records": log}).encode())
    assert ingest.write(decoded, tenant, source, get_settings(), lambda _: None).written == len(log)


def _audit(kopter: Kopter, tenant: str | None, day: str) -> dict[str, Any]:
    """`kopter run audit --wait`: one tenant's day, or (no tenant) every tenant's as beat does."""
    which = ["--tenant", tenant] if tenant else []
    out = kopter("run", "audit", *which, "--date", day, "--wait", env=LONG).stdout
    return json.loads(out[out.index("{") :])


def _digest(kopter: Kopter, tenant: str, day: str) -> dict[str, Any]:
    [digest] = kopter.rows("digest", "--tenant", tenant, "--date", day)
    return digest


def _start_worker(workers: Workers) -> Child:
    worker = workers.start("audit", "audit,notifications", env=LONG)
    workers.wait_ready(worker)
    return worker


def test_records_keep_the_event_type_and_a_console_sign_ins_mfa():
    """What the audit rules need that ingest did not keep before (older items have neither): the
    event type, and a console sign-in's MFAUsed. An unexpected additionalEventData costs no
    record."""
    sign_in = {
        **_snitch_records()[1],
        "eventName": "ConsoleLogin",
        "eventSource": "signin.amazonaws.com",
        "eventType": "AwsConsoleSignIn",
        "additionalEventData": {"MobileVersion": "No", "MFAUsed": "No"},
        "responseElements": {"ConsoleLogin": "Success"},
    }
    odd = {**sign_in, "eventID": "odd", "additionalEventData": "not an object"}
    s3_call = _snitch_records()[3]  # GetBucketAcl, with its own additionalEventData
    decoded = records.decode(json.dumps({"Records": [sign_in, odd, s3_call]}).encode())
    assert decoded.rejected == []
    sign_in_item, odd_item, s3_item = records.items(decoded.records, "t", "test", None)
    assert sign_in_item["mfa_used"] == {"S": "No"}
    assert sign_in_item["event_type"] == {"S": "AwsConsoleSignIn"}
    assert "mfa_used" not in odd_item and "mfa_used" not in s3_item
    assert s3_item["event_type"] == {"S": "AwsApiCall"}


def test_the_real_samples_report_their_denied_calls(kopter, workers):
    """The Stratus Red Team file (2024-07-30) holds 30 GetPasswordData calls denied to the role
    session that made them (Client.UnauthorizedOperation) and christophe's 4 AssumeRole calls, 2
    denied: the digest reports them by principal, the 30 as a burst of denied calls, and as
    password data requested for 30 instances (both medium: stored, not notified). The org-trail
    file (2025-03-06) holds 20 routine calls (S3 ACL checks by CloudTrail itself, an SSM agent,
    a Lambda's Decrypt, chris reading AWS Health, services assuming roles): counted, and no
    finding."""
    tenant = kopter.new_tenant()
    _write(tenant, _stratus_records(), "file://stratus")
    _write(tenant, _snitch_records(), "file://snitch")
    _start_worker(workers)

    run = _audit(kopter, tenant, STRATUS_DAY)
    assert run == {
        "days": [STRATUS_DAY],
        "tenants": 1,
        "records": 34,
        "denied_calls": 32,
        "failed_calls": 0,
        "findings": {"medium": 2},
        "notified": 0,
    }
    digest = digest_of_stratus_day = _digest(kopter, tenant, STRATUS_DAY)
    assert digest["denied"] == [
        {"principal": STRATUS_SESSION, "count": 30, "calls": {"GetPasswordData": 30}},
        {"principal": CHRISTOPHE, "count": 2, "calls": {"AssumeRole": 2}},
    ]
    assert digest["by_principal"] == {STRATUS_SESSION: 30, CHRISTOPHE: 4}
    assert digest["by_source"] == {"ec2.amazonaws.com": 30, "sts.amazonaws.com": 4}
    password_data, burst = digest["findings"]
    assert burst["rule"] == "denied-calls-burst" and burst["severity"] == "medium"
    assert (burst["account_id"], burst["principal"]) == ("457448411975", STRATUS_SESSION)
    assert burst["count"] == 30 and burst["calls"] == {"GetPasswordData": 30}
    assert (burst["first_at"], burst["last_at"]) == ("2024-07-30T21:31:16Z", "2024-07-30T21:31:21Z")
    assert password_data["rule"] == "password-data-read"
    assert password_data["technique"] == {
        "tactic": "Credential Access",
        "id": "T1552",
        "name": "Unsecured Credentials",
    }
    assert password_data["why"] == (
        "EC2 Windows password data requested for 5 or more instances (30 call(s), 30 distinct)"
    )
    text = kopter("digest", "--tenant", tenant, "--date", STRATUS_DAY).stdout
    assert "34 records, 32 denied, 0 failed, 2 findings" in text
    assert f"30     {STRATUS_SESSION}  GetPasswordData: 30" in text
    # A finding's row: its severity, rule and technique id.
    findings = [line.split()[:3] for line in text.splitlines() if line.startswith("medium ")]
    assert findings == [
        ["medium", "password-data-read", "T1552"],
        ["medium", "denied-calls-burst", "T1580"],
    ]

    run = _audit(kopter, tenant, SNITCH_DAY)
    assert (run["records"], run["denied_calls"], run["failed_calls"]) == (20, 0, 0)
    assert run["findings"] == {}
    digest = _digest(kopter, tenant, SNITCH_DAY)
    assert digest["findings"] == [] and digest["denied"] == [] and digest["failed"] == []
    expected = Counter(
        r["userIdentity"].get("arn") or r["userIdentity"]["invokedBy"] for r in _snitch_records()
    )
    assert digest["by_principal"] == dict(expected)
    assert digest["by_principal"]["cloudtrail.amazonaws.com"] == 14
    assert digest["by_source"]["s3.amazonaws.com"] == 14
    assert kopter.rows("notifications", "--tenant", tenant) == []

    # Beat's way, no tenant named: every tenant's digest of the day, this one's the same again.
    everyone = _audit(kopter, None, STRATUS_DAY)
    assert everyone["tenants"] == len(kopter.rows("tenants", "list"))
    assert everyone["records"] >= 34 and everyone["denied_calls"] >= 32
    assert _digest(kopter, tenant, STRATUS_DAY)["denied"] == digest_of_stratus_day["denied"]


# --- a scripted day ---------------------------------------------------------------------------

DAY = "2026-03-14"


def _record(
    account: str, who: str, name: str, source: str, at: str, **fields: Any
) -> dict[str, Any]:
    """A record in the shape of the real samples' (see STRATUS_FILE's AssumeRole calls)."""
    identity: dict[str, Any] = {"accountId": account, "principalId": "AIDAEXAMPLE"}
    if who == "root":
        identity |= {"type": "Root", "arn": f"arn:aws:iam::{account}:root"}
    else:
        identity |= {"type": "IAMUser", "arn": f"arn:aws:iam::{account}:user/{who}"}
        identity["userName"] = who
    return {
        "eventVersion": "1.08",
        "userIdentity": identity,
        "eventTime": f"{DAY}T{at}Z",
        "eventSource": source,
        "eventName": name,
        "awsRegion": "us-east-1",
        "sourceIPAddress": "200.249.253.51",
        "userAgent": "aws-cli/2.15.0",
        "requestParameters": None,
        "responseElements": None,
        "eventID": str(uuid.uuid4()),
        "readOnly": False,
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": account,
        "eventCategory": "Management",
        **fields,
    }


def _sign_in(account: str, who: str, at: str, mfa: str, outcome: str) -> dict[str, Any]:
    return _record(
        account,
        who,
        "ConsoleLogin",
        "signin.amazonaws.com",
        at,
        eventType="AwsConsoleSignIn",
        responseElements={"ConsoleLogin": outcome},
        additionalEventData={
            "MobileVersion": "No",
            "LoginTo": "https://console.aws.amazon.com",
            "MFAUsed": mfa,
        },
        **({"errorMessage": "Failed authentication"} if outcome == "Failure" else {}),
    )


def _ingress(account: str, at: str, cidr: str) -> dict[str, Any]:
    ranges = {"items": [{"cidrIp": cidr}]}
    permission = {"ipProtocol": "tcp", "fromPort": 22, "toPort": 22, "ipRanges": ranges}
    return _record(
        account,
        "alice",
        "AuthorizeSecurityGroupIngress",
        "ec2.amazonaws.com",
        at,
        requestParameters={
            "groupId": "sg-0123456789abcdef0",
            "ipPermissions": {"items": [permission]},
        },
        responseElements={"_return": True},
    )


def _share_snapshot(account: str, at: str, grantee: dict[str, str]) -> dict[str, Any]:
    return _record(
        account,
        "alice",
        "ModifySnapshotAttribute",
        "ec2.amazonaws.com",
        at,
        requestParameters={
            "snapshotId": "snap-0123456789abcdef0",
            "createVolumePermission": {"add": {"items": [grantee]}},
            "attributeType": "CREATE_VOLUME_PERMISSION",
        },
    )


def _denied(record: dict[str, Any], action: str) -> dict[str, Any]:
    arn = record["userIdentity"]["arn"]
    message = f"User: {arn} is not authorized to perform: {action}"
    return {**record, "errorCode": "AccessDenied", "errorMessage": message}


EC2, IAM, CLOUDTRAIL = "ec2.amazonaws.com", "iam.amazonaws.com", "cloudtrail.amazonaws.com"
SUPPORT = "support.amazonaws.com"


def _scripted_day(a: str, b: str) -> list[dict[str, Any]]:
    """Account ``a``'s day: each finding once, a near miss beside most, and two records just
    outside the day. ``b`` is the tenant's other account."""
    trail, own_key = {"name": "org-trail"}, {"userName": "alice"}
    admin = {"userName": "bob", "policyArn": "arn:aws:iam::aws:policy/AdministratorAccess"}
    # AWS Support acting with the root user's identity: no use of root.
    on_behalf = {"type": "Root", "arn": f"arn:aws:iam::{a}:root", "invokedBy": SUPPORT}
    attach = _record(a, "bob", "AttachUserPolicy", IAM, "09:11:00", requestParameters=admin)
    delete_trail = _record(a, "bob", "DeleteTrail", CLOUDTRAIL, "11:05:00", requestParameters=trail)
    before, after = (
        {**_record(a, "root", "StopLogging", CLOUDTRAIL, "00:00:00"), "eventTime": when}
        for when in ("2026-03-13T23:59:59Z", "2026-03-15T00:00:00Z")
    )
    return [
        _record(a, "root", "DescribeInstances", EC2, "08:00:00"),
        _record(a, "root", "DescribeCases", SUPPORT, "08:01:00", userIdentity=on_behalf),
        _sign_in(a, "alice", "09:00:00", mfa="No", outcome="Success"),
        _sign_in(a, "bob", "09:05:00", mfa="Yes", outcome="Success"),
        _sign_in(a, "alice", "08:59:00", mfa="No", outcome="Failure"),
        _record(a, "alice", "CreateAccessKey", IAM, "09:10:00", requestParameters=own_key),
        _denied(attach, "iam:AttachUserPolicy"),
        _ingress(a, "10:00:00", "0.0.0.0/0"),
        _ingress(a, "10:01:00", "10.0.0.0/8"),
        _record(a, "alice", "StopLogging", CLOUDTRAIL, "11:00:00", requestParameters=trail),
        _denied(delete_trail, "cloudtrail:DeleteTrail"),
        _share_snapshot(a, "12:00:00", {"group": "all"}),
        _share_snapshot(a, "12:01:00", {"userId": b}),
        _record(a, "bob", "CreateBucket", "s3.amazonaws.com", "13:00:00",
                errorCode="BucketAlreadyExists", errorMessage="The bucket already exists"),
        before,
        after,
    ]  # fmt: skip


ROOT_USE = "8ad1600d-e9dc-4251-b0ee-a65268f29add"  # SigmaHQ's AWS Root Credentials
FAILED_SIGN_IN = "6393e346-1977-46ef-8987-ad414a145fad"  # AWS ConsoleLogin Failed Authentication
NO_MFA = "77caf516-34e5-4df9-b4db-20744fea0a60"  # AWS Successful Console Login Without MFA
BACKDOOR_KEYS = "0a5177f4-6ca9-44c2-aacf-d3f3d8b6e4d2"  # AWS IAM Backdoor Users Keys
INGRESS = "6fb77778-040f-4015-9440-572aa9b6b580"  # Ingress/Egress Security Group Modification
TRAIL_CHANGE = "4db60cc0-36fb-42b7-9b58-a5b53019fb74"  # AWS CloudTrail Important Change
SNAPSHOT = "abae8fec-57bd-4f87-aff6-6e3db989843d"  # AWS Snapshot Backup Exfiltration


def test_a_scripted_day_is_judged_at_ingest_notified_once_and_digested(kopter, workers, tmp_path):
    """Every call of the day is judged as `kopter ingest` writes it, by kopter's rules and
    SigmaHQ's side by side: each record a rule matches is one finding naming every rule that
    matched it, notified at once (the two just outside the day too). The digest lists the day's
    findings, summed up by rules, account and principal, and raises nothing itself: its own
    rules (the ones that count over the day) find nothing here. Ingested again, the day adds no
    finding and no notification."""
    connected = kopter.connect()
    tenant, a = connected.tenant, connected.account
    b = kopter.connect(tenant=tenant).account
    day = _scripted_day(a, b)
    log = tmp_path / "day.json.gz"
    log.write_bytes(gzip.compress(json.dumps({"Records": day}).encode()))
    out = kopter("ingest", str(log), "--tenant", tenant).stdout
    assert "16 records, 16 written, 0 rejected, 13 findings" in out
    worker = _start_worker(workers)

    run = _audit(kopter, tenant, DAY)
    expected_run = {
        "days": [DAY],
        "tenants": 1,
        "records": 14,
        "denied_calls": 2,
        "failed_calls": 1,
        "findings": {"critical": 2, "high": 4, "medium": 5},
        "notified": 0,
    }
    assert run == expected_run
    digest = _digest(kopter, tenant, DAY)
    root, alice, bob = (f"arn:aws:iam::{a}:{who}" for who in ("root", "user/alice", "user/bob"))
    assert [
        (f["severity"], [r["id"] for r in f["rules"]], f["principal"], f["count"], f["found"])
        for f in digest["findings"]
    ] == [
        ("critical", ["cloudtrail-stopped", TRAIL_CHANGE], alice, 1, "ingest"),
        ("critical", ["snapshot-shared-outside", SNAPSHOT], alice, 1, "ingest"),
        ("high", ["root-account-use", ROOT_USE], root, 1, "ingest"),
        ("high", ["console-login-without-mfa", NO_MFA], alice, 1, "ingest"),
        ("high", ["security-group-open-to-world", INGRESS], alice, 1, "ingest"),
        ("high", ["cloudtrail-stop-attempt", TRAIL_CHANGE], bob, 1, "ingest"),
        ("medium", ["iam-change", BACKDOOR_KEYS], alice, 1, "ingest"),
        # SigmaHQ's alone, oldest first: AWS Support calling as root, alice's failed sign-in,
        # the narrow ingress rule, the snapshot shared with the tenant's other account.
        ("medium", [ROOT_USE], root, 1, "ingest"),
        ("medium", [FAILED_SIGN_IN], alice, 1, "ingest"),
        ("medium", [INGRESS], alice, 1, "ingest"),
        ("medium", [SNAPSHOT], alice, 1, "ingest"),
    ]
    assert {f["account_id"] for f in digest["findings"]} == {a}
    stopped = digest["findings"][0]
    assert stopped["rule"] == "cloudtrail-stopped" and stopped["calls"] == {"StopLogging": 1}
    assert stopped["technique"]["id"] == "T1562.008"
    assert stopped["rules"][1] == {
        "id": TRAIL_CHANGE,
        "title": "AWS CloudTrail Important Change",
        "source": "sigma",
        "author": "vitaliy0x1",  # the Detection Rule License: every finding names the author
        "level": "medium",
    }
    assert digest["denied"] == [
        {"principal": bob, "count": 2, "calls": {"AttachUserPolicy": 1, "DeleteTrail": 1}}
    ]
    assert digest["failed"] == [
        {"principal": bob, "count": 1, "errors": {"BucketAlreadyExists": 1}}
    ]
    assert digest["by_principal"] == {alice: 8, bob: 4, root: 2}
    assert digest["by_source"]["ec2.amazonaws.com"] == 5
    text = kopter("digest", "--tenant", tenant, "--date", DAY).stdout
    assert "14 records, 2 denied, 1 failed, 11 findings" in text

    def stored() -> list[Any]:
        return list(query(NotificationsQuery(tenant, limit=100)))

    wait_for(lambda: len(stored()) == 13, 30, "a notification per finding")
    notifications = kopter.rows("notifications", "--tenant", tenant)
    assert {n["kind"] for n in notifications} == {"finding"}
    ids = {(r["eventName"], r["eventTime"]): r["eventID"] for r in day}
    by_subject = {n["subject"]: n for n in notifications}
    assert set(by_subject) == {f"{a}:{r['eventID']}" for r in day} - {
        f"{a}:{ids[name, f'{DAY}T{at}Z']}"
        for name, at in (("ConsoleLogin", "09:05:00"), ("AttachUserPolicy", "09:11:00"),
                         ("CreateBucket", "13:00:00"))
    }  # fmt: skip
    assert Counter(n["severity"] for n in notifications) == {
        "critical": 4,  # the trail stopped (three times: two just outside the day), a snapshot
        "high": 4,
        "warning": 5,  # SigmaHQ's medium rules alone, and iam-change
    }
    stop = by_subject[f"{a}:{ids['StopLogging', f'{DAY}T11:00:00Z']}"]
    assert stop["severity"] == "critical"
    assert stop["title"] == (
        f"CloudTrail logging stopped or a trail deleted in account {a} and 1 more rule(s)"
    )
    assert stop["body"].startswith(
        f"{alice} called StopLogging (cloudtrail.amazonaws.com) in us-east-1 at {DAY}T11:00:00Z "
        "from 200.249.253.51. Matched: CloudTrail logging stopped or a trail deleted (kopter "
        "rule cloudtrail-stopped, level critical, by kopter); AWS CloudTrail Important Change "
        f"(sigma rule {TRAIL_CHANGE}, level medium, by vitaliy0x1)."
    )
    assert stop["detail"]["event_name"] == "StopLogging"
    assert [r["id"] for r in stop["detail"]["rules"]] == ["cloudtrail-stopped", TRAIL_CHANGE]
    assert stop["detail"]["principal"] == alice and stop["detail"]["account_id"] == a

    # The same day again, by both paths: no finding, no notification, the same digest.
    first = AuditDigest.get(tenant, DAY).computed_at
    again = kopter("ingest", str(log), "--tenant", tenant).stdout
    assert "16 records, 16 written, 0 rejected, 0 findings" in again
    assert _audit(kopter, tenant, DAY) == expected_run
    assert worker.tail(100_000).count("'stored'") == 13
    assert "'duplicate'" not in worker.tail(100_000)
    assert len(stored()) == 13
    [again_digest] = AuditDigest.query(tenant)
    assert again_digest.day == DAY and again_digest.computed_at > first
    assert _digest(kopter, tenant, DAY)["findings"] == digest["findings"]


def test_bad_input_is_one_clear_line(kopter):
    tenant = kopter.new_tenant()
    for args in (["digest", "--tenant", tenant], ["run", "audit", "--tenant", tenant]):
        bad = kopter(*args, "--date", "2026-02-30", ok=False)
        assert bad.stderr == (
            "kopter: error: --date '2026-02-30' is not an ISO date like 2026-11-27\n"
        )
    missing = kopter("digest", "--tenant", tenant, "--date", "2026-01-01", ok=False)
    assert missing.stderr.startswith("kopter: error: no audit digest of tenant acme-")
    assert f"kopter run audit --tenant {tenant} --date 2026-01-01" in missing.stderr
    assert len(missing.stderr.splitlines()) == 1
