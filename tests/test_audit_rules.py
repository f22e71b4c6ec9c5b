"""The daily audit's rules (kopter/cloudtrail/rules.py) against real attacks and close look-alikes:
Stratus Red Team's own detonation logs, each ingested into a tenant of its own and its day
audited; a day holding, for every rule, one call that must fire it and one that must not; and
the routine samples, which raise nothing."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import Any

import pytest

from kopter import accounts, demo, lifecycle
from kopter.cloudtrail import digest, grants, ingest, records
from kopter.cloudtrail.rules import RULES
from kopter.settings import get_settings
from tests.support.samples import STRATUS_DIR

STRATUS_LOGS = sorted(STRATUS_DIR.glob("aws.*.json"))
OTHER = "846424999548"  # an account no tenant registered

# MITRE ATT&CK Enterprise (v18, https://attack.mitre.org), written here from MITRE and not from
# kopter/cloudtrail: each technique a finding may name, its title and the tactics it belongs to.
CA, DE, DI, EXE = "Credential Access", "Defense Evasion", "Discovery", "Execution"
EXF, IMP, IA, LM = "Exfiltration", "Impact", "Initial Access", "Lateral Movement"
PER, PE = "Persistence", "Privilege Escalation"
ATTACK: dict[str, tuple[str, set[str]]] = {
    "T1021.004": ("Remote Services: SSH", {LM}),
    "T1059": ("Command and Scripting Interpreter", {EXE}),
    "T1078.004": ("Valid Accounts: Cloud Accounts", {DE, IA, PER, PE}),
    "T1098": ("Account Manipulation", {PER, PE}),
    "T1098.001": ("Account Manipulation: Additional Cloud Credentials", {PER, PE}),
    "T1098.003": ("Account Manipulation: Additional Cloud Roles", {PER, PE}),
    "T1485": ("Data Destruction", {IMP}),
    "T1496": ("Resource Hijacking", {IMP}),
    "T1526": ("Cloud Service Discovery", {DI}),
    "T1537": ("Transfer Data to Cloud Account", {EXF}),
    "T1546": ("Event Triggered Execution", {PER, PE}),
    "T1552": ("Unsecured Credentials", {CA}),
    "T1552.005": ("Unsecured Credentials: Cloud Instance Metadata API", {CA}),
    "T1555.006": ("Credentials from Password Stores: Cloud Secrets Management Stores", {CA}),
    "T1562.007": ("Impair Defenses: Disable or Modify Cloud Firewall", {DE}),
    "T1562.008": ("Impair Defenses: Disable or Modify Cloud Logs", {DE}),
    "T1580": ("Cloud Infrastructure Discovery", {DI}),
    "T1651": ("Cloud Administration Command", {EXE}),
    "T1666": ("Modify Cloud Resource Hierarchy", {DE}),
}
# The ATT&CK technique each Stratus Red Team detonation carries out, as MITRE describes it (its
# pages name some of these very calls: AttachUserPolicy under T1098.003; CreateAccessKey,
# CreateLoginProfile and GetFederationToken under T1098.001).
STRATUS_ATTACK = {
    "aws.credential-access.ec2-get-password-data": "T1552",
    "aws.credential-access.ec2-steal-instance-credentials": "T1552.005",
    "aws.credential-access.secretsmanager-batch-retrieve-secrets": "T1555.006",
    "aws.credential-access.secretsmanager-retrieve-secrets": "T1555.006",
    "aws.credential-access.ssm-retrieve-securestring-parameters": "T1555.006",
    "aws.defense-evasion.cloudtrail-delete": "T1562.008",
    "aws.defense-evasion.cloudtrail-event-selectors": "T1562.008",
    "aws.defense-evasion.cloudtrail-stop": "T1562.008",
    "aws.defense-evasion.dns-delete-logs": "T1562.008",
    "aws.defense-evasion.organizations-leave": "T1666",
    "aws.defense-evasion.vpc-remove-flow-logs": "T1562.008",
    "aws.discovery.ec2-download-user-data": "T1580",
    "aws.execution.ec2-launch-unusual-instances": "T1496",
    "aws.execution.ec2-user-data": "T1059",
    "aws.execution.ssm-send-command": "T1651",
    "aws.execution.ssm-start-session": "T1651",
    "aws.exfiltration.ec2-security-group-open-port-22-ingress": "T1562.007",
    "aws.exfiltration.ec2-share-ami": "T1537",
    "aws.exfiltration.ec2-share-ebs-snapshot": "T1537",
    "aws.exfiltration.rds-share-snapshot": "T1537",
    "aws.impact.bedrock-invoke-model": "T1496",
    "aws.initial-access.console-login-without-mfa": "T1078.004",
    "aws.lateral-movement.ec2-instance-connect": "T1021.004",
    "aws.lateral-movement.ec2-serial-console-send-ssh-public-key": "T1021.004",
    "aws.persistence.iam-backdoor-role": "T1098.003",
    "aws.persistence.iam-backdoor-user": "T1098.001",
    "aws.persistence.iam-create-admin-user": "T1098.003",
    "aws.persistence.iam-create-backdoor-role": "T1098.003",
    "aws.persistence.iam-create-user-login-profile": "T1098.001",
    "aws.persistence.lambda-backdoor-function": "T1546",
    "aws.persistence.lambda-layer-extension": "T1546",
    "aws.persistence.lambda-overwrite-code": "T1546",
    "aws.persistence.rolesanywhere-create-trust-anchor": "T1098.001",
    "aws.persistence.sts-federation-token": "T1098.001",
    "aws.privilege-escalation.iam-update-user-login-profile": "T1098",
}


def _write(tenant: str, log: list[dict[str, Any]]) -> None:
    """Into the tenant's audit log through ingest's own decoder and writer (`kopter ingest`
    reads a ``{"Records": [...]}`` file; the detonation logs are bare arrays)."""
    decoded = records.decode(json.dumps({"Records": log}).encode())
    assert decoded.rejected == []
    assert ingest.write(
        decoded, tenant, "file://test", get_settings(), lambda _: None
    ).written == len(log)


def _findings(tenant: str, day: str) -> list[dict[str, Any]]:
    return digest.audit_day(tenant, date.fromisoformat(day), get_settings()).digest.findings


def _not_attack(findings: Iterable[dict[str, Any]]) -> list[str]:
    """Findings whose technique is not ATT&CK's: an id not in the table, another title, or a
    tactic the technique does not belong to."""
    wrong = []
    for f in findings:
        technique = f["technique"]
        if technique is None:  # only SigmaHQ's rules, whose tags follow ATT&CK's own versions
            if any(rule["source"] == "kopter" for rule in f["rules"]):
                wrong.append(f"{f['rule']}: a rule of kopter's without its technique")
            continue
        title, tactics = ATTACK.get(technique["id"], ("", set()))
        if technique["name"] != title or technique["tactic"] not in tactics:
            wrong.append(f"{f['rule']}: {technique}")
    return sorted(set(wrong))


@contextmanager
def _tenant_with(*account_ids: str) -> Iterator[str]:
    """A new tenant that registered ``account_ids``, released again afterwards: an account id
    belongs to one tenant at a time, and other modules register the samples' accounts too. One
    held by such a module all session is left to it: the call's own account is the tenant's in
    every rule, registered or not."""
    tenant = accounts.add_tenant(f"audit-{secrets.token_hex(4)}")
    added = []
    for account_id in account_ids:
        if accounts.account_owner(account_id) is None:
            role = f"arn:aws:iam::{account_id}:role/kopter"
            request = accounts.AccountRequest(account_id, role, ("us-east-1",))
            added.append(accounts.add_account(tenant, request).account_id)
    try:
        yield tenant.tenant_id
    finally:
        for account_id in added:
            lifecycle.remove_account(tenant.tenant_id, account_id)


def test_each_stratus_red_team_detonation_fires_its_rules(kopter):
    """Each AWS technique's detonation log, in a tenant that registered the log's account, and
    its day audited: every rule written for that technique fires, its findings naming the
    ATT&CK technique the detonation carries out (STRATUS_ATTACK), and every finding's technique
    is ATT&CK's own. Coverage: all of the catalogue's logs."""
    assert set(STRATUS_ATTACK) == {path.stem for path in STRATUS_LOGS}
    covered = []
    for path in STRATUS_LOGS:
        technique = path.stem
        log = json.loads(path.read_text())
        [account] = {r["recipientAccountId"] for r in log}
        [day] = {r["eventTime"][:10] for r in log}
        with _tenant_with(account) as tenant:
            _write(tenant, log)
            findings = _findings(tenant, day)
        fired = {rule["id"] for f in findings for rule in f["rules"]}
        expected = {rule.name for rule in RULES if technique in rule.stratus}
        assert expected, f"no rule is written for {technique}"
        assert expected <= fired, f"{technique}: {sorted(expected - fired)} did not fire"
        named = {f["technique"]["id"] for f in findings if expected & {r["id"] for r in f["rules"]}}
        assert named == {STRATUS_ATTACK[technique]}, technique
        assert _not_attack(findings) == [], technique
        for f in findings:
            assert f["account_id"] == account and f["calls"] and f["why"]
        covered.append(technique)
    assert len(covered) == len(STRATUS_LOGS) == 35


def test_the_demos_launches_raise_nothing(kopter):
    """The demo story's launches (t3.micro, m5.large, bob's eight c5.xlarge) are routine: no
    finding. A positive control in the same tenant and day: a GPU launch by the same user among
    them is reported, alone. (The org-trail sample's quiet day is in test_audit_digest.)"""
    now = datetime.now(UTC)
    day = now.date().isoformat()
    ids = {name: f"i-{n:017x}" for n, name in enumerate(demo.SERVERS)}
    story = [step for step in demo.STORY if step.call == "RunInstances"]
    launches = [demo._record(step, now, ids) for step in story]
    gpu_step = demo.Step(0, 0, demo.ALICE, "RunInstances", ("api",), "p3.2xlarge")
    gpu = demo._record(gpu_step, now, ids)
    with _tenant_with(demo.ACCOUNT) as tenant:
        _write(tenant, launches)
        assert _findings(tenant, day) == []
        _write(tenant, [gpu])
        [finding] = _findings(tenant, day)
    assert (finding["rule"], finding["principal"]) == ("unusual-instance-type", demo.ALICE)
    assert (finding["count"], finding["event_ids"]) == (1, [gpu["eventID"]])


# --- one call that fires each rule, one look-alike that does not --------------------------------

DAY = "2026-04-02"
IP, NAT, LAPTOP = "198.51.100.7", "10.0.5.7", "203.0.113.50"


class Day:
    """A day of account ``a``'s records, ``b`` being the tenant's other account."""

    def __init__(self, a: str, b: str) -> None:
        self.a, self.b = a, b
        self.records: list[dict[str, Any]] = []
        self.second = 0

    def user(self, name: str) -> dict[str, Any]:
        arn = f"arn:aws:iam::{self.a}:user/{name}"
        return {"type": "IAMUser", "arn": arn, "accountId": self.a, "userName": name}

    def instance(self, instance_id: str) -> dict[str, Any]:
        arn = f"arn:aws:sts::{self.a}:assumed-role/app/{instance_id}"
        return {"type": "AssumedRole", "arn": arn, "accountId": self.a}

    def call(
        self,
        who: str | dict[str, Any],
        source: str,
        name: str,
        request: dict[str, Any] | None = None,
        *,
        ip: str = IP,
        times: int = 1,
        **fields: Any,
    ) -> str:
        """Append the call (``times`` over); return its principal's ARN."""
        identity = self.user(who) if isinstance(who, str) else who
        for _ in range(times):
            self.second += 1
            self.records.append(
                {
                    "eventVersion": "1.08",
                    "userIdentity": identity,
                    "eventTime": f"{DAY}T10:{self.second // 60:02d}:{self.second % 60:02d}Z",
                    "eventSource": f"{source}.amazonaws.com",
                    "eventName": name,
                    "awsRegion": "us-east-1",
                    "sourceIPAddress": ip,
                    "userAgent": "aws-cli/2.15.0",
                    "requestParameters": request,
                    "responseElements": None,
                    "eventID": secrets.token_hex(16),
                    "eventType": "AwsApiCall",
                    "recipientAccountId": self.a,
                    **fields,
                }
            )
        return str(identity["arn"])


def _trust(account: str, condition: dict[str, Any] | None = None) -> str:
    statement: dict[str, Any] = {"Effect": "Allow", "Principal": {"AWS": account}}
    statement |= {"Action": "sts:AssumeRole"} | ({"Condition": condition} if condition else {})
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


DENIED = {"errorCode": "AccessDenied", "errorMessage": "not authorized"}


def _cases(d: Day) -> dict[str, tuple[str, str]]:
    """For each rule: the principal of the calls that must fire it, and of the look-alike."""
    other, own = f"arn:aws:iam::{OTHER}:root", f"arn:aws:iam::{d.b}:root"
    org = {"StringEquals": {"aws:PrincipalOrgID": "o-1234abcde"}}
    secrets_ids = [f"db-{n}" for n in range(10)]
    names = [f"/app/key-{n}" for n in range(10)]
    sign_in = {"eventType": "AwsConsoleSignIn", "responseElements": {"ConsoleLogin": "Success"}}

    def login(who: str, mfa: str) -> str:
        extra = {"additionalEventData": {"MFAUsed": mfa}}
        return d.call(who, "signin", "ConsoleLogin", **sign_in, **extra)

    def each(who: str | dict[str, Any], source: str, calls: Iterable[tuple[str, Any]]) -> str:
        return [d.call(who, source, name, request) for name, request in calls][-1]

    root = {"type": "Root", "arn": f"arn:aws:iam::{d.a}:root", "accountId": d.a}
    on_behalf = {"type": "Root", "arn": f"arn:aws:iam::{d.b}:root", "invokedBy": "support"}
    lifecycle = {"LifecycleConfiguration": {"Rule": {"Status": "Enabled", "Expiration": {}}}}
    expiring = json.loads(json.dumps(lifecycle).replace("{}", '{"Days": 1}'))
    keeping = json.loads(json.dumps(lifecycle).replace("{}", '{"Days": 365}'))
    d.call("laptop-user", "sts", "GetCallerIdentity", ip=LAPTOP)
    d.call(d.instance("i-0ccc0000000000000"), "ec2", "DescribeInstances", ip=NAT)
    recon = [("s3", "ListBuckets"), ("iam", "ListRoles"), ("iam", "ListUsers")]
    return {
        "root-account-use": (
            d.call(root, "ec2", "DescribeInstances"),
            d.call(on_behalf, "support", "DescribeCases"),
        ),
        "console-login-without-mfa": (login("no-mfa", "No"), login("with-mfa", "Yes")),
        "iam-change": (
            d.call("creates-user", "iam", "CreateUser", {"userName": "x"}),
            d.call("reads-user", "iam", "GetUser", {"userName": "x"}),
        ),
        "access-key-for-another-user": (
            d.call("keys-other", "iam", "CreateAccessKey", {"userName": "victim"}),
            d.call("keys-own", "iam", "CreateAccessKey", {"userName": "keys-own"}),
        ),
        "login-profile-for-another-user": (
            d.call("profile-other", "iam", "CreateLoginProfile", {"userName": "victim"}),
            d.call("profile-own", "iam", "CreateLoginProfile", {"userName": "profile-own"}),
        ),
        "password-of-another-user-changed": (
            d.call("password-other", "iam", "UpdateLoginProfile", {"userName": "victim"}),
            d.call("password-own", "iam", "UpdateLoginProfile", {"userName": "password-own"}),
        ),
        "admin-policy-attached": (
            d.call(
                "admin",
                "iam",
                "AttachUserPolicy",
                {"userName": "x", "policyArn": "arn:aws:iam::aws:policy/AdministratorAccess"},
            ),
            d.call(
                "read-only",
                "iam",
                "AttachUserPolicy",
                {"userName": "x", "policyArn": "arn:aws:iam::aws:policy/ReadOnlyAccess"},
            ),
        ),
        "role-trusts-another-account": (
            d.call(
                "trusts-other", "iam", "CreateRole", {"assumeRolePolicyDocument": _trust(other)}
            ),
            d.call("trusts-own", "iam", "UpdateAssumeRolePolicy", {"policyDocument": _trust(own)}),
        ),
        "federation-token": (
            d.call("federates", "sts", "GetFederationToken", {"name": "x"}),
            d.call("session", "sts", "GetSessionToken"),
        ),
        "roles-anywhere-trust-anchor": (
            d.call("anchors", "rolesanywhere", "CreateTrustAnchor", {"name": "x"}),
            d.call("lists-anchors", "rolesanywhere", "ListTrustAnchors"),
        ),
        "lambda-invocable-from-outside": (
            d.call("opens-lambda", "lambda", "AddPermission20150331v2", {"principal": "*"}),
            d.call(
                "s3-lambda",
                "lambda",
                "AddPermission20150331v2",
                {"principal": "s3.amazonaws.com", "sourceAccount": d.a},
            ),
        ),
        "lambda-layer-added": (
            d.call(
                "layers",
                "lambda",
                "UpdateFunctionConfiguration20150331v2",
                {"functionName": "f", "layers": [f"arn:aws:lambda:us-east-1:{OTHER}:layer:x:1"]},
            ),
            d.call(
                "memory",
                "lambda",
                "UpdateFunctionConfiguration20150331v2",
                {"functionName": "f", "memorySize": 512},
            ),
        ),
        "lambda-code-replaced": (
            d.call("deploys", "lambda", "UpdateFunctionCode20150331v2", {"functionName": "f"}),
            d.call("reads-code", "lambda", "GetFunction20150331v2", {"functionName": "f"}),
        ),
        "security-group-open-to-world": (
            d.call(
                "opens-sg",
                "ec2",
                "AuthorizeSecurityGroupIngress",
                {"groupId": "sg-1", "cidrIp": "208.236.235.254/0", "fromPort": 22},
            ),
            d.call(
                "narrow-sg",
                "ec2",
                "AuthorizeSecurityGroupIngress",
                {"groupId": "sg-1", "cidrIp": "208.236.235.254/32", "fromPort": 22},
            ),
        ),
        "cloudtrail-stopped": (
            d.call("stops", "cloudtrail", "StopLogging", {"name": "t"}),
            d.call("starts", "cloudtrail", "StartLogging", {"name": "t"}),
        ),
        "cloudtrail-stop-attempt": (
            d.call("tries", "cloudtrail", "DeleteTrail", {"name": "t"}, **DENIED),
            d.call("stops-too", "cloudtrail", "StopLogging", {"name": "t"}),
        ),
        "cloudtrail-changed": (
            d.call("selects", "cloudtrail", "PutEventSelectors", {"trailName": "t"}),
            d.call("reads-selectors", "cloudtrail", "GetEventSelectors", {"trailName": "t"}),
        ),
        "bucket-expires-objects-quickly": (
            d.call("expires", "s3", "PutBucketLifecycle", {"bucketName": "logs", **expiring}),
            d.call("keeps", "s3", "PutBucketLifecycle", {"bucketName": "logs", **keeping}),
        ),
        "dns-query-logs-deleted": (
            d.call("dns", "route53resolver", "DeleteResolverQueryLogConfig", {"id": "r"}),
            d.call("dns-list", "route53resolver", "ListResolverQueryLogConfigs"),
        ),
        "flow-logs-deleted": (
            d.call("flows", "ec2", "DeleteFlowLogs", {"flowLogId": "fl-1"}),
            d.call("flows-read", "ec2", "DescribeFlowLogs"),
        ),
        "organization-left": (
            d.call("leaves", "organizations", "LeaveOrganization", **DENIED),
            d.call("org-reader", "organizations", "DescribeOrganization"),
        ),
        "snapshot-shared-outside": (
            d.call(
                "snap-out",
                "ec2",
                "ModifySnapshotAttribute",
                {
                    "snapshotId": "snap-1",
                    "createVolumePermission": {"add": {"items": [{"userId": OTHER}]}},
                },
            ),
            d.call(
                "snap-own",
                "ec2",
                "ModifySnapshotAttribute",
                {
                    "snapshotId": "snap-1",
                    "createVolumePermission": {"add": {"items": [{"userId": d.b}]}},
                },
            ),
        ),
        "ami-shared-outside": (
            d.call(
                "ami-out",
                "ec2",
                "ModifyImageAttribute",
                {"imageId": "ami-1", "launchPermission": {"add": {"items": [{"group": "all"}]}}},
            ),
            d.call(
                "ami-own",
                "ec2",
                "ModifyImageAttribute",
                {"imageId": "ami-1", "launchPermission": {"add": {"items": [{"userId": d.b}]}}},
            ),
        ),
        "rds-snapshot-shared-outside": (
            d.call(
                "rds-out",
                "rds",
                "ModifyDBSnapshotAttribute",
                {"attributeName": "restore", "valuesToAdd": [OTHER]},
            ),
            d.call(
                "rds-own",
                "rds",
                "ModifyDBSnapshotAttribute",
                {"attributeName": "restore", "valuesToAdd": [d.b]},
            ),
        ),
        "bucket-policy-grants-outside": (
            d.call(
                "bucket-out",
                "s3",
                "PutBucketPolicy",
                {"bucketName": "b", "bucketPolicy": json.loads(_trust(other))},
            ),
            d.call(
                "bucket-org",
                "s3",
                "PutBucketPolicy",
                {"bucketName": "b", "bucketPolicy": json.loads(_trust("*", org))},
            ),
        ),
        "secrets-read-in-bulk": (
            each(
                "reads-secrets",
                "secretsmanager",
                [("GetSecretValue", {"secretId": s}) for s in secrets_ids],
            ),
            d.call(
                "reads-one-secret",
                "secretsmanager",
                "GetSecretValue",
                {"secretId": "db-0"},
                times=30,
            ),
        ),
        "secrets-batch-read": (
            d.call("batch", "secretsmanager", "BatchGetSecretValue", {"filters": []}),
            d.call("one-secret", "secretsmanager", "GetSecretValue", {"secretId": "db-1"}),
        ),
        "parameters-decrypted-in-bulk": (
            d.call("decrypts", "ssm", "GetParameters", {"names": names, "withDecryption": True}),
            d.call("plain", "ssm", "GetParameters", {"names": names, "withDecryption": False}),
        ),
        "password-data-read": (
            each(
                "passwords",
                "ec2",
                [("GetPasswordData", {"instanceId": f"i-{n}"}) for n in range(5)],
            ),
            d.call("one-password", "ec2", "GetPasswordData", {"instanceId": "i-1"}, times=5),
        ),
        "instance-credentials-used-elsewhere": (
            d.call(d.instance("i-0aaa0000000000000"), "ec2", "DescribeInstances", ip=LAPTOP),
            d.call(d.instance("i-0bbb0000000000000"), "ec2", "DescribeInstances", ip=NAT),
        ),
        "user-data-read": (
            each(
                "user-data",
                "ec2",
                [
                    ("DescribeInstanceAttribute", {"attribute": "userData", "instanceId": f"i-{n}"})
                    for n in range(5)
                ],
            ),
            each(
                "types",
                "ec2",
                [
                    (
                        "DescribeInstanceAttribute",
                        {"attribute": "instanceType", "instanceId": f"i-{n}"},
                    )
                    for n in range(5)
                ],
            ),
        ),
        "discovery-from-instance": (
            [d.call(d.instance("i-0ddd0000000000000"), s, n, ip=NAT) for s, n in recon][-1],
            [d.call("auditor", s, n) for s, n in recon][-1],
        ),
        "ses-enumerated": (
            each(
                "ses",
                "ses",
                [(n, None) for n in ("GetAccountSendingEnabled", "GetSendQuota", "ListIdentities")],
            ),
            d.call("ses-quota", "ses", "GetSendQuota", times=5),
        ),
        "unusual-instance-type": (
            d.call("gpu", "ec2", "RunInstances", {"instanceType": "p2.xlarge"}, **DENIED),
            d.call("launches-c5", "ec2", "RunInstances", {"instanceType": "c5.xlarge"}),
        ),
        "user-data-changed": (
            d.call(
                "user-data-set",
                "ec2",
                "ModifyInstanceAttribute",
                {"instanceId": "i-1", "userData": "<sensitiveDataRemoved>"},
            ),
            d.call(
                "resizes",
                "ec2",
                "ModifyInstanceAttribute",
                {"instanceId": "i-1", "instanceType": {"value": "t3.large"}},
            ),
        ),
        "notebook-lifecycle-changed": (
            d.call(
                "notebook",
                "sagemaker",
                "UpdateNotebookInstance",
                {"notebookInstanceName": "n", "lifecycleConfigName": "evil"},
            ),
            d.call(
                "notebook-size",
                "sagemaker",
                "UpdateNotebookInstance",
                {"notebookInstanceName": "n", "instanceType": "ml.t3.large"},
            ),
        ),
        "ssm-shell-command": (
            d.call("shell", "ssm", "SendCommand", {"documentName": "AWS-RunShellScript"}),
            d.call("patches", "ssm", "SendCommand", {"documentName": "AWS-RunPatchBaseline"}),
        ),
        "ssm-session": (
            d.call("session-start", "ssm", "StartSession", {"target": "i-1"}),
            d.call("session-end", "ssm", "TerminateSession", {"sessionId": "s"}),
        ),
        "instance-connect-key": (
            d.call("connects", "ec2-instance-connect", "SendSSHPublicKey", {"instanceId": "i-1"}),
            d.call("endpoints", "ec2", "DescribeInstanceConnectEndpoints"),
        ),
        "serial-console-key": (
            d.call("serial", "ec2-instance-connect", "SendSerialConsoleSSHPublicKey"),
            d.call("serial-status", "ec2", "GetSerialConsoleAccessStatus"),
        ),
        "bedrock-model-access-enabled": (
            d.call("bedrock-access", "bedrock", "PutUseCaseForModelAccess"),
            d.call("bedrock-list", "bedrock", "ListFoundationModels"),
        ),
        "bedrock-model-invoked": (
            d.call("bedrock-invoke", "bedrock", "InvokeModel", {"modelId": "m"}),
            d.call("bedrock-availability", "bedrock", "GetFoundationModelAvailability"),
        ),
        "ami-deregistered": (
            d.call("deregisters", "ec2", "DeregisterImage", {"imageId": "ami-1"}),
            d.call("lists-images", "ec2", "DescribeImages"),
        ),
        "denied-calls-burst": (
            d.call("probes", "iam", "ListUsers", times=10, **DENIED),
            d.call("probes-less", "iam", "ListUsers", times=9, **DENIED),
        ),
    }


def test_each_rule_fires_on_its_call_and_not_on_its_look_alike(kopter):
    """One day in a tenant with two accounts: per rule, the calls that must fire it (by one
    principal) and a close look-alike (by another). Every rule has its pair, and every finding
    names an ATT&CK technique by its title and one of its tactics."""
    connected = kopter.connect()
    tenant, a = connected.tenant, connected.account
    b = kopter.connect(tenant=tenant).account
    day = Day(a, b)
    cases = _cases(day)
    assert set(cases) == {rule.name for rule in RULES}
    # Requests of shapes the rules do not expect: no finding, and no failed ingest or audit.
    odd = day.call("odd", "ec2", "ModifySnapshotAttribute", {"createVolumePermission": "all"})
    day.call("odd", "ec2", "ModifyImageAttribute", {"launchPermission": {"add": [{"userId": 7}]}})
    day.call(
        "odd",
        "rds",
        "ModifyDBSnapshotAttribute",
        {"attributeName": "restore", "valuesToAdd": "all"},
    )
    day.call("odd", "lambda", "AddPermission20150331v2", {"principal": 846424999548})
    day.call("odd", "iam", "CreateRole", {"assumeRolePolicyDocument": "{not json"})
    day.call("odd", "s3", "PutBucketPolicy", {"bucketPolicy": {"Statement": "Allow"}})
    day.call("odd", "ssm", "GetParameters", {"names": "/one", "withDecryption": True})
    day.call("odd", "ssm", "SendCommand", {"documentName": ["AWS-RunShellScript"]})
    _write(tenant, day.records)
    findings = _findings(tenant, DAY)
    assert _not_attack(findings) == []
    fired = {(rule["id"], f["principal"]) for f in findings for rule in f["rules"]}
    for rule, (fires, look_alike) in cases.items():
        assert (rule, fires) in fired, f"{rule} did not fire"
        assert (rule, look_alike) not in fired, f"{rule} fired on its look-alike"
    assert [rule for rule, principal in fired if principal == odd and rule in cases] == []


@pytest.mark.parametrize(
    ("cidr", "whole"),
    [
        ("0.0.0.0/0", True),
        ("::/0", True),
        ("208.236.235.254/0", True),
        (" 10.1.2.3/0 ", True),
        ("0.0.0.0/1", False),
        ("10.0.0.0/8", False),
        ("not a network", False),
        (None, False),
    ],
)
def test_networks_are_parsed(cidr, whole):
    assert grants.is_whole_internet(cidr) is whole


def test_accounts_are_parsed_from_arns_and_policies():
    assert grants.account_id("arn:aws:iam::193672423079:root") == "193672423079"
    assert grants.account_id("arn:aws-cn:iam::193672423079:user/a/b") == "193672423079"
    assert grants.account_id("arn:aws:s3:::bucket") is None
    assert grants.account_id("193672423079") == "193672423079"
    assert grants.account_id("19367242307") is None
    assert grants.instance_session("arn:aws:sts::1:assumed-role/r/i-786a3A8B5C0d92eF4")
    assert not grants.instance_session("arn:aws:sts::1:assumed-role/r/i-am-a-person")
    accounts_ = {"AWS": ["111122223333", "arn:aws:iam::444455556666:root"]}
    secure = {"Bool": {"aws:SecureTransport": "true"}}
    policy = {
        "Statement": [
            {"Effect": "Allow", "Principal": accounts_},
            {"Effect": "Deny", "Principal": "*"},
            {"Effect": "Allow", "Principal": "*", "Condition": secure},
            {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}},
            {"Effect": "Allow", "Principal": "*"},
        ]
    }
    grantees = list(grants.policy_grantees(json.dumps(policy)))
    assert grantees == ["111122223333", "444455556666", "*"]
    assert grants.outside(grantees, frozenset({"111122223333"})) == ["444455556666", "*"]
