"""An account's and a tenant's life after they are added, through the real `kopter` command and
real workers: change, disconnect, purge (checked by scanning every table), rotate (judged by a
proxy that answers AssumeRole as AWS does for the role's trust policy: moto ignores ExternalId)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from kopter import aws, cache
from kopter.cloudtrail import ingest
from kopter.crossaccount import CrossAccountSessions
from kopter.devstack import free_port, spawn, wait_for_port
from kopter.settings import get_settings
from kopter.tables import (
    ALL_MODELS,
    AuditDigest,
    Channel,
    Ec2Event,
    Ec2Instance,
    Ec2Snapshot,
    Finding,
    FrontendNotification,
    GlobalItem,
    PriceGraphPoint,
    TenantRule,
)
from tests.conftest import (
    MOTO_PORT,
    OUTPUT,
    Connected,
    customer_client,
    new_account_id,
    wait_for,
)
from tests.support import chaos
from tests.support.factories import log_file, log_key, log_records
from tests.support.proxy import Recorded, RecordingProxy
from tests.support.samples import ROOT

pytestmark = pytest.mark.long

LIMIT = 60  # seconds: KOPTER_TASK_TIME_LIMIT of this module's workers and runs
LONG = {"KOPTER_TASK_TIME_LIMIT": str(LIMIT)}
DAY = datetime(2026, 11, 20, tzinfo=UTC)


def _summary(out: str) -> dict[str, Any]:
    return json.loads(out[out.index("{") :])


def _describe_run(kopter, tenant: str) -> dict[str, Any]:
    args = ("run", "describer", "--tenant", tenant, "--wait", "--timeout", "90")
    return _summary(kopter(*args, env=LONG).stdout)


def _trail(c: Connected, bucket: str, records: int = 5) -> tuple[str, str]:
    """A log file of the account in ``bucket`` of the customer's account (made if missing)."""
    s3 = customer_client(c, "s3")
    s3.create_bucket(Bucket=bucket)
    key = log_key(c.account, "us-east-1", DAY)
    s3.put_object(Bucket=bucket, Key=key, Body=log_file(log_records(records, c.account, DAY)))
    return bucket, key


def _ingest(bucket: str, key: str) -> ingest.IngestResult:
    sessions = CrossAccountSessions(get_settings())
    return ingest.ingest_object(bucket, key, sessions, get_settings(), lambda _: None)


def _launch(c: Connected, region: str) -> list[str]:
    """An instance tagged for backup in ``region`` of the customer's account: its volumes."""
    [instance] = customer_client(c, "ec2", region).run_instances(
        ImageId="ami-0123456789abcdef0", InstanceType="t3.nano", MinCount=1, MaxCount=1,
        TagSpecifications=[
            {"ResourceType": "instance", "Tags": [{"Key": "kopter:backup", "Value": "true"}]}
        ],
    )["Instances"]  # fmt: skip
    return [m["Ebs"]["VolumeId"] for m in instance["BlockDeviceMappings"]]


def _snapshots(c: Connected, region: str, volumes: list[str]) -> int:
    """Snapshots of ``volumes`` in the customer's account, whoever took them."""
    return len(
        customer_client(c, "ec2", region).describe_snapshots(
            OwnerIds=["self"], Filters=[{"Name": "volume-id", "Values": volumes}]
        )["Snapshots"]
    )


def _costed(kopter, c: Connected, hour: str) -> set[str]:
    """The regions of the account's cost point for ``hour``, once the aggregator has run."""
    kopter("run", "aggregator", "--tenant", c.tenant, "--hour", hour, "--wait", env=LONG)
    when = datetime.fromisoformat(hour)
    return set(PriceGraphPoint.get(c.tenant, PriceGraphPoint.sort_key(when, c.account)).by_region)


REMOVED, KEPT, ADDED = "us-east-1", "eu-west-1", "us-west-2"


def test_an_updated_account_is_described_backed_up_costed_and_ingested_as_changed(kopter, workers):
    old, new = f"trail-{uuid.uuid4().hex[:8]}", f"trail-{uuid.uuid4().hex[:8]}"
    c = kopter.connect("--regions", f"{REMOVED},{KEPT}", "--cloudtrail-bucket", old)
    volumes = {region: _launch(c, region) for region in (REMOVED, KEPT, ADDED)}
    worker = workers.start("lifecycle-update", "describer,aggregator,backup", env=LONG)
    workers.wait_ready(worker)
    first = _describe_run(kopter, c.tenant)
    assert first["regions_described"] == 2
    assert _costed(kopter, c, first["run_at"]) == {REMOVED, KEPT}

    kopter(
        "accounts", "update", "--tenant", c.tenant, "--account-id", c.account,
        "--regions", f"{KEPT},{ADDED}", "--cloudtrail-bucket", new,
    )  # fmt: skip
    [row] = kopter.rows("accounts", "list", "--tenant", c.tenant)
    assert row["regions"] == [KEPT, ADDED] and row["cloudtrail_bucket"] == new
    run = _describe_run(kopter, c.tenant)
    assert run["regions_described"] == 2 and run["instances"] == 2
    rows = {r.region for r in Ec2Instance.query(f"{c.tenant}#{c.account}")}
    assert rows == {REMOVED, KEPT, ADDED}
    # The removed region's instance, tagged and still running, is neither backed up nor costed
    # any more; the kept region's, tagged alike, still is.
    backups = _summary(kopter("run", "backup", "--tenant", c.tenant, "--wait", env=LONG).stdout)
    assert backups["regions_backed_up"] == 2 and backups["instances"] == 2, backups
    made = {region: _snapshots(c, region, v) for region, v in volumes.items()}
    assert made == {REMOVED: 0, KEPT: 1, ADDED: 1}
    assert {r.region for r in Ec2Snapshot.query(f"{c.tenant}#{c.account}")} == {KEPT, ADDED}
    costed = _costed(kopter, c, first["run_at"])
    assert REMOVED not in costed and KEPT in costed, costed
    # Tasks queued for the region before it was removed end cleanly, doing nothing.
    from tasks.backup import back_up_account_region
    from tasks.describer import describe_account_region

    removed = f"region {REMOVED} was removed from account {c.account}"
    queued = describe_account_region.delay(c.tenant, c.account, REMOVED, DAY.isoformat())
    assert queued.get(timeout=LIMIT) == {"status": "skipped", "reason": removed}
    queued = back_up_account_region.delay(c.tenant, c.account, REMOVED, DAY.isoformat())
    assert queued.get(timeout=LIMIT)["reason"] == removed
    # Ingest follows the bucket: the new one is read, the old one refused.
    assert _ingest(*_trail(c, new)).status == ingest.INGESTED
    refused = _ingest(*_trail(c, old))
    assert refused.status == ingest.REFUSED and "is not the CloudTrail bucket" in str(
        refused.reason
    )

    bad = kopter(
        "accounts", "update", "--tenant", c.tenant, "--account-id", c.account,
        "--role-arn", "arn:aws:iam::123456789012:role/x", ok=False,
    )  # fmt: skip
    assert bad.stderr.startswith("kopter: error: role ARN") and "is in account" in bad.stderr


def test_a_removed_account_stops_at_once_and_its_id_is_free(kopter, workers):
    bucket = f"trail-{uuid.uuid4().hex[:8]}"
    c = kopter.connect("--cloudtrail-bucket", bucket)
    customer_client(c, "ec2").run_instances(
        ImageId="ami-0123456789abcdef0", InstanceType="t3.nano", MinCount=1, MaxCount=1
    )
    log = _trail(c, bucket)
    worker = workers.start("lifecycle-remove", "describer,backup", env=LONG)
    workers.wait_ready(worker)
    assert _describe_run(kopter, c.tenant)["regions_described"] == 1

    out = kopter("accounts", "remove", "--tenant", c.tenant, "--account-id", c.account)
    assert f"account {c.account} disconnected" in out.stderr
    assert kopter.rows("accounts", "list", "--tenant", c.tenant) == []
    [gone] = kopter.rows("accounts", "list", "--tenant", c.tenant, "--all")
    assert gone["removed_at"] and gone["account_id"] == c.account
    # Nothing runs for it: no task is enqueued, one queued before ends cleanly.
    fan_out = _summary(kopter("run", "describer", "--tenant", c.tenant, "--wait").stdout)
    assert fan_out["enqueued"] == 0
    backups = _summary(kopter("run", "backup", "--tenant", c.tenant, "--wait").stdout)
    assert backups["enqueued"] == 0
    from tasks.backup import back_up_account_region

    queued = back_up_account_region.delay(c.tenant, c.account, "us-east-1", DAY.isoformat())
    assert queued.get(timeout=LIMIT)["reason"] == f"account {c.account} was disconnected"
    refused = _ingest(*log)
    assert refused.status == ingest.REFUSED
    assert refused.reason == f"account {c.account} is not registered with kopter"
    # Its data stays until its retention; its id is free for another tenant.
    assert list(Ec2Instance.query(f"{c.tenant}#{c.account}"))
    other = kopter.connect(account=c.account)
    assert other.tenant != c.tenant
    again = kopter("accounts", "remove", "--tenant", c.tenant, "--account-id", c.account)
    assert "was disconnected on" in again.stderr

    # --purge deletes what kopter holds of it now; the other tenant's items of the id stay.
    theirs = f"{other.tenant}#{c.account}"
    Ec2Instance(
        theirs, "us-east-1#i-0other", tenant_id=other.tenant, account_id=c.account,
        region="us-east-1", instance_id="i-0other", state="running", instance_type="t3.nano",
        first_seen_at=DAY, last_seen_at=DAY,
    ).save()  # fmt: skip
    ours = f"{c.tenant}#{c.account}"
    _finding(c.tenant, c.account, "its-own").save()
    _finding(c.tenant, new_account_id(), "another-accounts").save()
    purged = kopter(
        "accounts", "remove", "--tenant", c.tenant, "--account-id", c.account,
        "--purge", "--yes", "--json",
    )  # fmt: skip
    deleted = {r["table"]: r["deleted"] for r in map(json.loads, purged.stdout.splitlines())}
    assert deleted["Ec2Instances"] == 1 and deleted["AwsAccounts"] == 1
    assert deleted["Findings"] == 1
    assert [f.event_id for f in Finding.query(c.tenant)] == ["another-accounts"]
    assert list(Ec2Instance.query(ours)) == [] and list(Ec2Event.by_account.query(ours)) == []
    assert [i.instance_id for i in Ec2Instance.query(theirs)] == ["i-0other"]
    assert kopter.rows("accounts", "list", "--tenant", c.tenant, "--all") == []


# --- purge ------------------------------------------------------------------------------------


def _scan_all() -> dict[str, list[dict[str, Any]]]:
    client = aws.client("dynamodb", get_settings())
    tables: dict[str, list[dict[str, Any]]] = {}
    for model in ALL_MODELS:
        table = model.Meta.table_name
        items: list[dict[str, Any]] = []
        for page in client.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
            items.extend(page["Items"])
        tables[table] = items
    return tables


def _owned_by(tenant: str) -> Callable[[dict[str, Any]], bool]:
    """Whether an item (attribute-value form) belongs to ``tenant``: any string attribute is the
    tenant id or leads with it, or (Global) its value names it."""

    def owned(item: dict[str, Any]) -> bool:
        for value in item.values():
            text = value.get("S")
            if text is not None and (text == tenant or text.startswith(f"{tenant}#")):
                return True
            if text is not None and f"#{tenant}#" in text:  # described#<tenant>#…
                return True
        return tenant in json.dumps(item.get("value", {}))

    return owned


def _finding(tenant: str, account: str, event_id: str) -> Finding:
    at = f"{DAY:%Y-%m-%dT%H:%M:%S}Z"
    return Finding(
        tenant, f"{at}#{event_id}", event_time=at, event_id=event_id,
        event_source="cloudtrail.amazonaws.com", event_name="StopLogging", account_id=account,
        region="us-east-1", principal="p", level="critical", rules=[{"id": "cloudtrail-stopped"}],
        created_at=datetime.now(UTC),
    )  # fmt: skip


def _fill(c: Connected) -> None:
    """The tenant's items in every table but the audit log, as kopter's jobs write them (its log
    files come through a worker: ``_ingested``)."""
    tenant_account = f"{c.tenant}#{c.account}"
    now = datetime.now(UTC)
    Ec2Instance(
        tenant_account, "us-east-1#i-0abc", tenant_id=c.tenant, account_id=c.account,
        region="us-east-1", instance_id="i-0abc", state="running", instance_type="t3.nano",
        first_seen_at=now, last_seen_at=now,
    ).save()  # fmt: skip
    Ec2Event(
        c.tenant, f"{DAY:%Y-%m-%dT%H:%M:%S}Z#e1", tenant_account=tenant_account,
        tenant_instance=f"{c.tenant}#i-0abc", account_id=c.account, region="us-east-1",
        instance_id="i-0abc", kind="launched", occurred_at=DAY,
    ).save()  # fmt: skip
    PriceGraphPoint(
        c.tenant, PriceGraphPoint.sort_key(DAY, c.account), hour=DAY, account_id=c.account,
        cost_usd=Decimal("1.5"), computed_at=now,
    ).save()  # fmt: skip
    AuditDigest(
        c.tenant, f"{DAY:%Y-%m-%d}", records=1, principals=1, by_principal={}, by_source={},
        denied_calls=0, denied=[], failed_calls=0, failed=[], findings_total=0, findings=[],
        computed_at=now,
    ).save()  # fmt: skip
    FrontendNotification(
        c.tenant, f"{DAY:%Y-%m-%dT%H:%M:%S}Z#n1", kind="k", subject="s", severity="info",
        title="t", body="b", created_at=now,
    ).save()  # fmt: skip
    Channel(
        c.tenant, "0123456789abcdef", kind="webhook", target="https://example.com/hook",
        secret="s" * 32, min_severity="info", created_at=now,
    ).save()  # fmt: skip
    Ec2Snapshot(
        tenant_account, f"us-east-1#vol-1#{DAY:%Y%m%dT%H}", tenant_id=c.tenant,
        account_id=c.account, region="us-east-1", volume_id="vol-1", instance_id="i-0abc",
        snapshot_id=f"snap-{c.account}", state="completed", created_at=now, expires_on=now,
    ).save()  # fmt: skip
    GlobalItem(
        f"described#{tenant_account}#us-east-1", value={"run_at": "x"}, updated_at=now
    ).save()
    _finding(c.tenant, c.account, "f1").save()
    TenantRule(
        c.tenant, "cloudtrail-stopped", source="kopter", enabled=False, updated_at=now
    ).save()
    cache.client(get_settings()).set(
        f"celery-task-meta-{uuid.uuid4()}", json.dumps({"result": {"tenant_id": c.tenant}})
    )


def _ingested(workers, trails: list[tuple[str, str]]) -> None:
    """The log files as CloudTrail delivers them: S3 announces each on the raw queue, a worker's
    bridge enqueues its ingest, the worker writes its records and its `ingested#` marker."""
    worker = workers.start("lifecycle-ingest", "ingest", env=LONG)
    workers.wait_ready(worker)
    chaos.notify(chaos.s3_notification(bucket, key) for bucket, key in trails)
    # One worker of two processes: three files in two rounds, each within the time limit, and
    # a third for the bridge and the markers.
    wait_for(lambda: chaos.ingested(trails) == set(trails), 3 * LIMIT, "the files ingested")
    workers.stop_all()


def test_a_purge_deletes_every_item_of_the_tenant_and_nothing_else(kopter, workers):
    buckets = [f"trail-{uuid.uuid4().hex[:8]}" for _ in range(3)]
    doomed, *others = (kopter.connect("--cloudtrail-bucket", b) for b in buckets)
    tenants = [doomed, *others]
    trails = [_trail(c, b, n) for c, b, n in zip(tenants, buckets, (1_200, 50, 50), strict=True)]
    _ingested(workers, trails)
    for c in tenants:
        _fill(c)
    owned = _owned_by(doomed.tenant)
    before = _scan_all()
    assert all(any(owned(i) for i in before[m.Meta.table_name]) for m in ALL_MODELS
               if m.Meta.table_name.removeprefix(get_settings().prefix) != "Ec2Prices")  # fmt: skip

    # A purge killed half-way through the audit log is run again and finishes.
    argv = [sys.executable, "-m", "kopter", "tenants", "remove", doomed.tenant, "--purge", "--yes"]
    crashed = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=os.environ)
    printed = []
    for line in crashed.stderr or ():
        printed.append(line.rstrip("\n"))
        if line.startswith("purging AuditLogEvents: 500"):
            crashed.send_signal(signal.SIGKILL)
            break
    crashed.wait(timeout=60)
    assert crashed.returncode == -signal.SIGKILL, "the purge ended before it could be killed"
    # What it said before it was killed: the removal, then its progress table by table.
    assert printed == [
        f"tenant {doomed.tenant} removed (1 account(s) disconnected now)",
        "purging Ec2Instances: 1 deleted",
        "purging AuditLogEvents: 500 deleted",
    ], printed
    finished = kopter("tenants", "remove", doomed.tenant, "--purge", "--yes", "--json")
    deleted = {r["table"]: r["deleted"] for r in map(json.loads, finished.stdout.splitlines())}
    assert 0 < deleted["AuditLogEvents"] < 1_200
    assert deleted["redis"] == 1 and deleted["Tenants"] == 1
    assert f"snap-{doomed.account}" in finished.stderr  # theirs: listed, not deleted
    # The ingest marker of its log file is gone; the other tenants' stay.
    assert chaos.ingested(trails) == set(trails[1:])

    after = _scan_all()
    for table, items in after.items():
        assert not [i for i in items if owned(i)], f"{table} still holds the tenant's items"
        kept = [i for i in before[table] if not owned(i)]
        assert sorted(map(json.dumps, kept)) == sorted(map(json.dumps, items)), table
    redis = cache.client(get_settings())
    needle = json.dumps(doomed.tenant).encode()
    assert not [k for k in redis.scan_iter("celery-task-meta-*") if needle in (redis.get(k) or b"")]
    # Idempotent: once more deletes nothing.
    again = kopter.rows("tenants", "remove", doomed.tenant, "--purge", "--yes")
    assert {r["deleted"] for r in again} == {0}


# --- rotate -----------------------------------------------------------------------------------

ACCESS_DENIED = (
    b'<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>'
    b"<Code>AccessDenied</Code><Message>User is not authorized to perform: sts:AssumeRole"
    b"</Message></Error><RequestId>1</RequestId></ErrorResponse>"
)


class TrustPolicy:
    """AssumeRole judged as AWS does for a role whose trust policy requires one of
    ``trusted`` as ``sts:ExternalId`` (the customer edits it by assigning ``trusted``)."""

    def __init__(self, role_arn: str, trusted: set[str]) -> None:
        self.role_arn, self.trusted = role_arn, trusted
        self.tried: list[str] = []

    def __call__(self, request: Recorded) -> tuple[int, bytes] | None:
        form = parse_qs(request.body.decode(errors="replace"))
        if form.get("Action") != ["AssumeRole"] or form.get("RoleArn") != [self.role_arn]:
            return None
        external_id = (form.get("ExternalId") or [""])[0]
        self.tried.append(external_id)
        return None if external_id in self.trusted else (403, ACCESS_DENIED)


def test_a_rotated_external_id_replaces_the_old_one_once_the_role_trusts_it(kopter):
    c = kopter.connect()
    policy = TrustPolicy(f"arn:aws:iam::{c.account}:role/kopter", {c.external_id})
    with RecordingProxy(MOTO_PORT, policy) as proxy:
        env = {"KOPTER_AWS_ENDPOINT_URL": proxy.url}
        check = ("accounts", "check", "--tenant", c.tenant, "--account-id", c.account)
        assert {r["name"] for r in kopter.rows(*check, env=env)} >= {"assume-role"}
        rotated = kopter(
            "accounts", "rotate-external-id", "--tenant", c.tenant, "--account-id", c.account
        ).stdout.splitlines()[1]
        assert rotated != c.external_id and rotated.startswith("kopter-")
        again = kopter(
            "accounts", "rotate-external-id", "--tenant", c.tenant, "--account-id", c.account,
            ok=False,
        )  # fmt: skip
        assert "rotation pending" in again.stderr

        # The role still trusts the old one: both are tried, the old one works, health says so.
        policy.tried.clear()
        rows = {r["name"]: r for r in kopter.rows(*check, env=env)}
        assert policy.tried == [rotated, c.external_id]
        assert rows["assume-role"]["ok"] and "only the old ExternalId works" in rows[
            "external-id"]["detail"]  # fmt: skip
        [account] = kopter.rows("accounts", "list", "--tenant", c.tenant)
        assert account["rotation_pending"] is True and account["healthy"] is True

        # The customer puts the new one in the trust policy: it works, the old one is forgotten.
        policy.trusted = {rotated}
        rows = {r["name"]: r for r in kopter.rows(*check, env=env)}
        assert "the old one is forgotten" in rows["external-id"]["detail"]
        [account] = kopter.rows("accounts", "list", "--tenant", c.tenant)
        assert account["rotation_pending"] is False and account["external_id"] == rotated

        # The old one alone no longer gets in, even if the role trusted it again.
        policy.trusted, policy.tried = {c.external_id}, []
        failed = kopter(*check, "--json", env=env, ok=False)
        assert policy.tried == [rotated]
        assert '"ok": false' in failed.stdout


# --- the read API -----------------------------------------------------------------------------


def test_the_api_shows_a_removed_account_and_refuses_a_removed_tenant(kopter):
    c = kopter.connect()
    kopter("accounts", "remove", "--tenant", c.tenant, "--account-id", c.account)
    port, secret = free_port(), "s" * 40
    env = {
        **os.environ,
        "KOPTER_API_AUTH": "gateway",
        "KOPTER_API_GATEWAY_SECRET": secret,
        "KOPTER_API_CURSOR_KEY": "c" * 40,
        "KOPTER_API_TENANT_CACHE_SECONDS": "0",
    }
    argv = [sys.executable, "-m", "kopter", "api", "--port", str(port)]
    child = spawn("api-lifecycle", argv, env, OUTPUT / "logs", cwd=ROOT)
    try:
        wait_for_port(child, port)
        headers = {"identityId": c.tenant, "x-kopter-gateway-secret": secret}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=60) as api:
            [account] = api.get("/v1/accounts").json()["items"]
            assert account["account_id"] == c.account and account["removed_at"]
            kopter("tenants", "remove", c.tenant, "--purge", "--yes")
            # The API remembers no tenant (cache of 0 s): its next read is refused.
            assert api.get("/v1/accounts").status_code == 401
    finally:
        child.stop()
