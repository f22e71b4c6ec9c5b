"""Detections at ingest, end to end: Stratus Red Team's real detonation logs delivered to a
customer's bucket and ingested by a real `-Q ingest,notifications,audit` worker are judged by
kopter's rules and SigmaHQ's as they are written; each record a rule matches is one finding
naming every rule, notified once, found again by a redelivery or `kopter ingest` and adding
nothing, listed by the daily digest; a rule turned off stops its findings on the worker within
KOPTER_RULES_CACHE_SECONDS. A tenant's own Sigma rules (`kopter rules`, the read API) run on that
tenant's records alone, and a bad one is refused in one line with nothing stored."""

from __future__ import annotations

import copy
import json
import os
import secrets
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from kopter.devstack import Child, free_port, spawn, wait_for_port
from kopter.reads.notifications import NotificationsQuery
from kopter.reads.notifications import query as notifications_query
from tests.conftest import OUTPUT, Connected, Kopter, Workers, customer_client, wait_for
from tests.support.factories import log_file, log_key, of_account
from tests.support.samples import ROOT, STRATUS_DIR, STRATUS_FILE
from tests.support.trails import marker, notify, s3_event

pytestmark = pytest.mark.long

DAY = "2024-07-31"  # the day of each detonation below


def _stratus(technique: str) -> list[dict[str, Any]]:
    return json.loads((STRATUS_DIR / f"aws.{technique}.json").read_text())


STOP = _stratus("defense-evasion.cloudtrail-stop")  # StopLogging
DELETE = _stratus("defense-evasion.cloudtrail-delete")  # DeleteTrail
FLOW = _stratus("defense-evasion.vpc-remove-flow-logs")  # DeleteFlowLogs
SECRETS = _stratus("credential-access.secretsmanager-retrieve-secrets")  # 20 secrets read
USER_DATA = _stratus("discovery.ec2-download-user-data")  # 15 instances' user data, denied
TRAIL_CHANGE = "4db60cc0-36fb-42b7-9b58-a5b53019fb74"  # SigmaHQ's, by vitaliy0x1, medium
FLOW_LOGS = "e386b9b5-af12-450e-afff-761730fb8a98"  # SigmaHQ's, by Ivan Saakov, high
ASSUME_ROLE_MISUSE = "905d389b-b853-46d0-9d3d-dea0d3a3cd49"  # off by default
# The worker reads a tenant's rules again after this long: a change applies within it.
CACHE_SECONDS = 2
WORKER_ENV = {"KOPTER_RULES_CACHE_SECONDS": str(CACHE_SECONDS), "KOPTER_TASK_TIME_LIMIT": "60"}


def _findings(kopter: Kopter, tenant: str) -> dict[str, list[str]]:
    """Each finding's event id, and the ids of the rules it names."""
    rows = kopter.rows("findings", "--tenant", tenant, "--limit", "1000")
    return {row["event_id"]: [rule["id"] for rule in row["rules"]] for row in rows}


def _notifications(tenant: str) -> list[Any]:
    return list(notifications_query(NotificationsQuery(tenant, limit=1000)))


def _deliver(c: Connected, bucket: str, log: list[dict[str, Any]]) -> str:
    """A log file as the trail writes it, and S3's notification of it on the raw queue."""
    key = log_key(c.account, "us-east-1", datetime(2024, 7, 31, 22, tzinfo=UTC))
    customer_client(c, "s3").put_object(Bucket=bucket, Key=key, Body=log_file(log))
    notify(s3_event(bucket, key))
    return key


def _ingested(worker: Child, bucket: str, key: str) -> str:
    """The worker's line for the object: its records, and how many findings were new."""
    wait_for(lambda: marker("ingested", bucket, key), 60, f"{key} ingested")
    [line] = [line for line in worker.tail(5_000).splitlines() if f"s3://{bucket}/{key}:" in line]
    return line


def _again(record: dict[str, Any], minute: int) -> dict[str, Any]:
    """The same call, made again later (a record of its own)."""
    out = copy.deepcopy(record)
    out["eventID"] = str(uuid.uuid4())
    out["eventTime"] = f"{DAY}T23:{minute:02d}:00Z"
    return out


def test_a_worker_finds_each_attack_once_notifies_once_and_the_digest_lists_it(
    kopter: Kopter, workers: Workers, tmp_path: Path
) -> None:
    bucket = f"detect-{secrets.token_hex(4)}"
    c = kopter.connect("--cloudtrail-bucket", bucket)
    customer_client(c, "s3").create_bucket(Bucket=bucket)
    day = of_account(STOP + DELETE + FLOW + SECRETS + USER_DATA, c.account)
    worker = workers.start("detect", "ingest,notifications,audit", env=WORKER_ENV)
    workers.wait_ready(worker)

    first = _deliver(c, bucket, day)
    assert _ingested(worker, bucket, first).endswith(
        "43 records, 43 written, 0 rejected, 3 new findings"
    )
    stop, delete, flow = STOP[0]["eventID"], DELETE[0]["eventID"], FLOW[0]["eventID"]
    expected = {
        stop: ["cloudtrail-stopped", TRAIL_CHANGE],  # kopter's and SigmaHQ's: one finding
        delete: ["cloudtrail-stopped", TRAIL_CHANGE],
        flow: ["flow-logs-deleted", FLOW_LOGS],
    }
    assert _findings(kopter, c.tenant) == expected
    wait_for(lambda: len(_notifications(c.tenant)) == 3, 30, "a notification per finding")
    by_subject = {n.subject: n for n in _notifications(c.tenant)}
    assert set(by_subject) == {f"{c.account}:{event}" for event in expected}
    notice = by_subject[f"{c.account}:{flow}"]
    assert (notice.kind, notice.severity) == ("finding", "high")
    assert notice.title == f"VPC flow logs deleted in account {c.account} and 1 more rule(s)"
    assert [(r["id"], r["author"]) for r in notice.detail["rules"]] == [
        ("flow-logs-deleted", "kopter"),
        (FLOW_LOGS, "Ivan Saakov"),  # the Detection Rule License: the author, with the finding
    ]
    assert notice.detail["event_name"] == "DeleteFlowLogs"
    assert notice.detail["account_id"] == c.account
    assert notice.detail["region"] == FLOW[0]["awsRegion"]
    assert by_subject[f"{c.account}:{stop}"].severity == "critical"

    # Found again, by every path: the same notification redelivered (the object is skipped),
    # the same records in another object, and `kopter ingest`: nothing new, nothing notified.
    notify(s3_event(bucket, first))
    second = _deliver(c, bucket, day)
    assert _ingested(worker, bucket, second).endswith("43 written, 0 rejected, 0 new findings")
    path = tmp_path / "day.json.gz"
    path.write_bytes(log_file(day))
    out = kopter("ingest", str(path), "--tenant", c.tenant).stdout
    assert "43 records, 43 written, 0 rejected, 0 findings" in out
    assert f"s3://{bucket}/{first} was already ingested: skipped" in worker.tail(5_000)
    assert _findings(kopter, c.tenant) == expected

    # The digest lists the findings of ingest beside its own, which count over the day.
    out = kopter("run", "audit", "--tenant", c.tenant, "--date", DAY, "--wait", env=WORKER_ENV)
    run = json.loads(out.stdout[out.stdout.index("{") :])
    assert run["findings"] == {"critical": 2, "high": 2, "medium": 2} and run["notified"] == 1
    [digest] = kopter.rows("digest", "--tenant", c.tenant, "--date", DAY)
    listed = [([r["id"] for r in f["rules"]], f["count"], f["found"]) for f in digest["findings"]]
    assert listed == [
        (["cloudtrail-stopped", TRAIL_CHANGE], 1, "ingest"),
        (["cloudtrail-stopped", TRAIL_CHANGE], 1, "ingest"),
        (["flow-logs-deleted", FLOW_LOGS], 1, "ingest"),
        (["secrets-read-in-bulk"], 20, "audit"),  # christophe's 20 GetSecretValue calls
        (["user-data-read"], 15, "audit"),  # one role session's 15 DescribeInstanceAttribute,
        (["denied-calls-burst"], 15, "audit"),  # all denied
    ]
    # Each finding notified once: the three of ingest, and the digest's own high one.
    wait_for(lambda: len(_notifications(c.tenant)) == 4, 30, "the digest's notification")
    assert sorted(n.kind for n in _notifications(c.tenant)) == ["audit-finding", *["finding"] * 3]
    delivered = [
        line
        for line in worker.tail(100_000).splitlines()
        if "tasks.notifications.deliver_notification[" in line and " succeeded " in line
    ]
    assert len(delivered) == 4 and all(line.endswith(": 'stored'") for line in delivered)

    # SigmaHQ's rule turned off for the tenant: the worker's next StopLogging names kopter's alone.
    kopter("rules", "disable", "--tenant", c.tenant, TRAIL_CHANGE)
    time.sleep(CACHE_SECONDS + 1)
    stopped_again = _again(day[0], 10)
    third = _deliver(c, bucket, [stopped_again])
    assert _ingested(worker, bucket, third).endswith("1 written, 0 rejected, 1 new findings")
    assert _findings(kopter, c.tenant)[stopped_again["eventID"]] == ["cloudtrail-stopped"]
    # And kopter's too: no finding at all.
    kopter("rules", "disable", "--tenant", c.tenant, "cloudtrail-stopped")
    time.sleep(CACHE_SECONDS + 1)
    fourth = _deliver(c, bucket, [_again(day[0], 20)])
    assert _ingested(worker, bucket, fourth).endswith("1 written, 0 rejected, 0 new findings")
    assert len(_findings(kopter, c.tenant)) == 4


# --- the tenant's own rules ------------------------------------------------------------------

PASSWORD_DATA_RULE = """
title: Windows password data requested and denied
id: {id}
status: experimental
description: Someone without the permission asked EC2 for an instance's Windows password.
author: Acme SOC
level: high
logsource:
    product: aws
    service: cloudtrail
detection:
    selection:
        eventSource: ec2.amazonaws.com
        eventName: GetPasswordData
        errorCode|startswith: Client.Unauthorized
    condition: selection
"""


def _rule_file(tmp_path: Path, text: str, name: str = "rule.yml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_a_tenants_own_rule_runs_on_its_records_alone_and_a_bad_rule_is_refused(
    kopter: Kopter, tmp_path: Path
) -> None:
    a, b = kopter.connect(), kopter.connect()
    rule_id = str(uuid.uuid4())
    added = kopter(
        "rules",
        "add",
        "--tenant",
        a.tenant,
        _rule_file(tmp_path, PASSWORD_DATA_RULE.format(id=rule_id)),
    )
    assert (
        added.stdout == f"added rule {rule_id} (high): Windows password data requested and denied\n"
    )
    rules_a = {r["id"]: r for r in kopter.rows("rules", "list", "--tenant", a.tenant)}
    rules_b = {r["id"]: r for r in kopter.rows("rules", "list", "--tenant", b.tenant)}
    assert {k: rules_a[rule_id][k] for k in ("title", "source", "author", "level", "enabled")} == {
        "title": "Windows password data requested and denied",
        "source": "tenant",
        "author": "Acme SOC",
        "level": "high",
        "enabled": True,
    }
    assert rule_id not in rules_b
    assert set(rules_a) - {rule_id} == set(rules_b)
    sources = [r["source"] for r in rules_b.values()]
    assert sources.count("sigma") == 57 and sources.count("kopter") == 36
    assert rules_b[ASSUME_ROLE_MISUSE]["enabled"] is False  # most traffic: off until turned on
    assert all(r["enabled"] for r in rules_b.values() if r["id"] != ASSUME_ROLE_MISUSE)

    # The same real records, each tenant's own: A's rule finds the 30 denied calls in A's alone.
    log = json.loads(STRATUS_FILE.read_text())
    for tenant, account in ((a.tenant, a.account), (b.tenant, b.account)):
        (tmp_path / f"{tenant}.json").write_text(json.dumps(of_account(log, account)))
    out = kopter("ingest", str(tmp_path / f"{a.tenant}.json"), "--tenant", a.tenant).stdout
    assert "34 records, 34 written, 0 rejected, 30 findings" in out
    found = _findings(kopter, a.tenant)
    denied = {r["eventID"] for r in log if r.get("errorCode") == "Client.UnauthorizedOperation"}
    assert found == {event: [rule_id] for event in denied}
    out = kopter("ingest", str(tmp_path / f"{b.tenant}.json"), "--tenant", b.tenant).stdout
    assert "34 records, 34 written, 0 rejected, 0 findings" in out
    assert _findings(kopter, b.tenant) == {}
    [shown] = [f for f in kopter.rows("findings", "--tenant", a.tenant, "--limit", "1")]
    assert shown["rules"] == [
        {
            "id": rule_id,
            "title": "Windows password data requested and denied",
            "source": "tenant",
            "author": "Acme SOC",
            "level": "high",
        }
    ]

    # B turns SigmaHQ's AssumeRole Misuse on, for itself: its 30 role-session calls, again.
    kopter("rules", "enable", "--tenant", b.tenant, ASSUME_ROLE_MISUSE)
    out = kopter("ingest", str(tmp_path / f"{b.tenant}.json"), "--tenant", b.tenant).stdout
    assert "34 written, 0 rejected, 30 findings" in out
    found = _findings(kopter, b.tenant)
    assert len(found) == 30 and all(rules == [ASSUME_ROLE_MISUSE] for rules in found.values())
    # A disables its own rule: listed as off, and B cannot name it.
    assert kopter.rows("rules", "disable", "--tenant", a.tenant, rule_id)[0]["enabled"] is False
    refused = kopter("rules", "enable", "--tenant", b.tenant, rule_id, ok=False)
    assert refused.stderr == (
        f"kopter: error: no rule {rule_id!r}: `kopter rules list --tenant T` lists the ids\n"
    )

    # A bad rule: one line naming what is wrong, and nothing stored.
    before = kopter.rows("rules", "list", "--tenant", a.tenant)
    uid = str(uuid.uuid4())
    good = PASSWORD_DATA_RULE.format(id=uid)
    bad = {
        "missing.yml": (None, "missing.yml: No such file or directory"),
        "big.yml": (good + "#" * 70_000, "a Sigma rule of more than 65,536 bytes"),
        "no-id.yml": (good.replace(f"id: {uid}\n", ""), "no id (a UUID"),
        "sigmas-id.yml": (
            good.replace(uid, TRAIL_CHANGE),
            f"Sigma rule {TRAIL_CHANGE}: that id is SigmaHQ's rule",
        ),
        "kopters-id.yml": (good.replace(uid, "cloudtrail-stopped"), "cloudtrail-stopped"),
        "backreference.yml": (
            good.replace("errorCode|startswith: Client.Unauthorized", "userAgent|re: '(a)\\1'"),
            f"Sigma rule {uid}:",
        ),
        "windash.yml": (
            good.replace("errorCode|startswith", "errorCode|windash"),
            "the modifier 'windash' on field 'errorCode', which kopter does not evaluate",
        ),
        "not-yaml.yml": ("title: [unclosed\n", "Sigma rule is not valid YAML"),
        "other-logsource.yml": (
            good.replace("service: cloudtrail", "service: guardduty"),
            "its logsource must be product aws, service cloudtrail",
        ),
        "binary.yml": ("\udcff", "not UTF-8 text"),
    }
    for name, (text, reason) in bad.items():
        path = tmp_path / name
        if text is not None:
            path.write_bytes(text.encode("utf-8", "surrogateescape"))
        refused = kopter("rules", "add", "--tenant", a.tenant, str(path), ok=False)
        [line] = refused.stderr.splitlines()
        assert line.startswith("kopter: error: ") and reason in line, (name, line)
    assert kopter.rows("rules", "list", "--tenant", a.tenant) == before


# --- the read API ----------------------------------------------------------------------------

SECRET = "g" * 40


@pytest.fixture
def api() -> Iterator[httpx.Client]:
    port = free_port()
    env = {
        **os.environ,
        "KOPTER_API_AUTH": "gateway",
        "KOPTER_API_GATEWAY_SECRET": SECRET,
        "KOPTER_API_CURSOR_KEY": "c" * 40,
    }
    argv = [sys.executable, "-m", "kopter", "api", "--port", str(port)]
    server = spawn("detections-api", argv, env, OUTPUT / "logs", cwd=ROOT)
    try:
        wait_for_port(server, port)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            yield client
    finally:
        server.stop()


def _as(tenant: str) -> dict[str, str]:
    return {"identityId": tenant, "x-kopter-gateway-secret": SECRET}


def test_the_read_api_lists_adds_and_switches_a_tenants_rules_and_pages_its_findings(
    kopter: Kopter, api: httpx.Client, tmp_path: Path
) -> None:
    a, b = kopter.connect(), kopter.connect()
    rule_id = str(uuid.uuid4())
    text = PASSWORD_DATA_RULE.format(id=rule_id)

    added = api.post("/v1/rules", json={"yaml": text}, headers=_as(a.tenant))
    assert added.status_code == 200, added.text
    assert {k: added.json()[k] for k in ("id", "source", "author", "enabled")} == {
        "id": rule_id,
        "source": "tenant",
        "author": "Acme SOC",
        "enabled": True,
    }
    mine = api.get("/v1/rules", headers=_as(a.tenant)).json()["items"]
    theirs = api.get("/v1/rules", headers=_as(b.tenant)).json()["items"]
    assert [r for r in mine if r["source"] == "tenant"] == [added.json()]
    assert [r["id"] for r in mine if r["source"] != "tenant"] == [r["id"] for r in theirs]
    assert mine == kopter.rows("rules", "list", "--tenant", a.tenant)  # the command line's rows

    bad = api.post(
        "/v1/rules",
        json={"yaml": text.replace("level: high", "level: dire")},
        headers=_as(a.tenant),
    )
    assert bad.status_code == 400 and "level" in bad.json()["message"]
    assert len(bad.json()["message"].splitlines()) == 1
    assert api.get("/v1/rules", headers=_as(a.tenant)).json()["items"] == mine

    off = api.post(f"/v1/rules/{rule_id}/disable", headers=_as(a.tenant))
    assert off.status_code == 200 and off.json()["enabled"] is False
    on = api.post(f"/v1/rules/{TRAIL_CHANGE}/disable", headers=_as(b.tenant))
    assert on.status_code == 200 and on.json()["enabled"] is False
    # Another tenant's rule is none of B's: a 404, and A's stays off.
    assert api.post(f"/v1/rules/{rule_id}/enable", headers=_as(b.tenant)).status_code == 404
    assert api.post("/v1/rules/no-such-rule/enable", headers=_as(a.tenant)).status_code == 404
    assert api.post("/v1/rules/a b/enable", headers=_as(a.tenant)).status_code == 400
    states = {
        r["id"]: r["enabled"] for r in api.get("/v1/rules", headers=_as(a.tenant)).json()["items"]
    }
    assert states[rule_id] is False and states[TRAIL_CHANGE] is True  # B's choice is B's
    assert api.get("/v1/rules").status_code == 401

    # Findings, a page at a time, A's alone.
    api.post(f"/v1/rules/{rule_id}/enable", headers=_as(a.tenant))
    log = json.loads(STRATUS_FILE.read_text())
    (tmp_path / "a.json").write_text(json.dumps(of_account(log, a.account)))
    kopter("ingest", str(tmp_path / "a.json"), "--tenant", a.tenant)
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": "7", **({"cursor": cursor} if cursor else {})}
        page = api.get("/v1/findings", params=params, headers=_as(a.tenant)).json()
        seen += [f["event_id"] for f in page["items"]]
        cursor = page["next"]
        if not cursor:
            break
    assert sorted(seen) == sorted(_findings(kopter, a.tenant)) and len(seen) == 30
    assert api.get("/v1/findings", headers=_as(b.tenant)).json() == {"items": [], "next": None}
    assert api.get("/v1/findings?since=2024-07-31", headers=_as(a.tenant)).json()["items"] == []
