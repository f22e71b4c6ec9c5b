"""The customer's CloudFormation template: cfn-lint passes on every variant, and its role allows
every request kopter makes in a customer's account and nothing that must never be possible.

The allowed table is not written by hand: a real worker and the real `kopter` command run the
describer, the backup job (a snapshot made, an expired one deleted), ingest (notified, backfilled
and inline) and `kopter accounts check` (inline and on the worker) against moto behind a
RecordingProxy; every request signed by the customer's role becomes the authorizations AWS would
check (tests/support/awscalls.py), and each must be allowed by the template's policy, resolved
for that account, under iam-simulate (tests/support/iamsim.py says why that evaluator). Every
statement of the policy must have allowed some request: a permission kopter does not use is not
granted. Each AssumeRole kopter sent is judged against the template's trust policy.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from click.testing import CliRunner

from kopter import accounts
from kopter.cli.onboarding import deployment
from kopter.cli.root import cli
from kopter.ec2 import backup
from kopter.iam import customer, own
from kopter.settings import get_settings
from tests.conftest import MOTO_PORT, TEST_ENV, Connected, customer_client, new_account_id, wait_for
from tests.support.awscalls import NEW_SNAPSHOT, customer_authorizations
from tests.support.factories import log_file, log_key, log_records
from tests.support.iamsim import Authorization, evaluate, resolve
from tests.support.proxy import RecordingProxy

pytestmark = pytest.mark.long

KOPTER_ACCOUNT = TEST_ENV["KOPTER_AWS_ACCOUNT_ID"]
REGIONS = ("us-east-1", "eu-west-1")
DAY = datetime(2026, 3, 1, 12, tzinfo=UTC)
PREFIX = "trails/main"
KMS_KEY = "arn:aws:kms:us-east-1:{account}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
# kopter's own side, as it reaches AssumeRole.
KOPTER_PRINCIPAL = f"arn:aws:sts::{KOPTER_ACCOUNT}:assumed-role/kopter-worker/i-0123456789"


def _kopter_worker_policy() -> dict[str, Any]:
    """What kopter's side may assume: the policy of a worker reaching customers."""
    return own.worker(get_settings(), ["describer", "backup", "ingest"])


def _cfn_lint(paths: list[Path]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "cfn-lint"), *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def _template(*options: str) -> str:
    """`kopter accounts template` in this process: 22 of them as `kopter` processes cost half a
    minute of the suite's two cores."""
    result = CliRunner().invoke(cli, ["accounts", "template", *options], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_cfn_lint_passes_on_every_variant(kopter, tmp_path):
    with_prefix = kopter.connect("--cloudtrail-bucket", "acme-trail", "--cloudtrail-prefix", PREFIX)
    bare = kopter.connect("--cloudtrail-bucket", "acme-trail-2")
    no_bucket = kopter.connect()
    variants: dict[str, tuple[str, ...]] = {"generic": ()}
    for name, c in (("prefix", with_prefix), ("bare", bare), ("nobucket", no_bucket)):
        account = ("--tenant", c.tenant, "--account-id", c.account)
        variants[name] = account
        variants[f"{name}-kms"] = (*account, "--kms-key-arn", KMS_KEY.format(account=c.account))
        if c is not no_bucket:
            variants[f"{name}-trail"] = (*account, "--with-trail")
            variants[f"{name}-trail-kms"] = (*variants[f"{name}-kms"], "--with-trail")
    paths = []
    for name, options in variants.items():
        for form in ("yaml", "json"):
            path = tmp_path / f"{name}.{form}"
            path.write_text(_template(*options, "--format", form))
            paths.append(path)
    assert len(paths) == 22
    linted = _cfn_lint(paths)
    assert linted.returncode == 0, linted.stdout + linted.stderr
    # The linter is no rubber stamp: a role without its trust policy fails it.
    broken = json.loads((tmp_path / "prefix.json").read_text())
    del broken["Resources"]["KopterRole"]["Properties"]["AssumeRolePolicyDocument"]
    (tmp_path / "broken.json").write_text(json.dumps(broken))
    assert _cfn_lint([tmp_path / "broken.json"]).returncode != 0
    # --with-trail needs the bucket it would create to be registered.
    refused = kopter(
        "accounts",
        "template",
        "--tenant",
        no_bucket.tenant,
        "--account-id",
        no_bucket.account,
        "--with-trail",
        ok=False,
    )
    assert "no CloudTrail bucket registered" in refused.stderr


def _role_policies(c: Connected, kms: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
    """The role's access policy and trust policy, as CloudFormation creates them for ``c``."""
    account = accounts.get_account(c.tenant, c.account)
    defaults = customer.Defaults(
        tenant_id=c.tenant,
        external_id=c.external_id,
        cloudtrail_bucket=account.cloudtrail_bucket or "",
        cloudtrail_prefix=account.cloudtrail_prefix or "",
        kms_key_arn=KMS_KEY.format(account=c.account) if kms else "",
    )
    template = customer.template(deployment(get_settings()), defaults)
    resources = resolve(template, {}, c.account, "us-east-1")
    role = resources["KopterRole"]["Properties"]
    return role["Policies"][0]["PolicyDocument"], role["AssumeRolePolicyDocument"]


def _customer_estate(c: Connected, bucket: str) -> dict[str, str]:
    """In the customer's account: an instance tagged for backup, an expired snapshot of
    kopter's and one of the customer's own, and log files of both layouts under the prefix."""
    ec2 = customer_client(c, "ec2")
    [instance] = ec2.run_instances(
        ImageId="ami-0123456789abcdef0",
        InstanceType="t3.micro",
        MinCount=1,
        MaxCount=1,
        TagSpecifications=[
            {"ResourceType": "instance", "Tags": [{"Key": "kopter:backup", "Value": "true"}]}
        ],
    )["Instances"]
    volume = instance["BlockDeviceMappings"][0]["Ebs"]["VolumeId"]
    expired_at = (DAY - timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%S+00:00")
    expired = ec2.create_snapshot(
        VolumeId=volume,
        TagSpecifications=[
            {
                "ResourceType": "snapshot",
                "Tags": [
                    {"Key": k, "Value": v}
                    for k, v in {
                        backup.MANAGED: "true",
                        backup.TENANT: c.tenant,
                        backup.INSTANCE: instance["InstanceId"],
                        backup.VOLUME: volume,
                        backup.WINDOW: expired_at,
                        backup.EXPIRES: expired_at,
                    }.items()
                ],
            }
        ],
    )["SnapshotId"]
    own = ec2.create_snapshot(VolumeId=volume)["SnapshotId"]
    s3 = customer_client(c, "s3")
    s3.create_bucket(Bucket=bucket)
    key = log_key(c.account, "us-east-1", DAY, PREFIX)
    s3.put_object(Bucket=bucket, Key=key, Body=log_file(log_records(3, c.account, DAY)))
    org_key = log_key(c.account, "us-east-1", DAY, f"{PREFIX}/AWSLogs/o-abc123def4").replace(
        f"{PREFIX}/AWSLogs/o-abc123def4/AWSLogs/", f"{PREFIX}/AWSLogs/o-abc123def4/"
    )
    s3.put_object(Bucket=bucket, Key=org_key, Body=log_file(log_records(2, c.account, DAY, 1)))
    return {"expired": expired, "own": own, "key": key, "org_key": org_key}


def test_every_request_kopter_makes_in_a_customer_account_is_allowed(kopter, workers):
    bucket = f"trail-{new_account_id()}"
    c = kopter.connect(
        "--regions", ",".join(REGIONS), "--cloudtrail-bucket", bucket, "--cloudtrail-prefix", PREFIX
    )
    estate = _customer_estate(c, bucket)
    as_tenant = ("--tenant", c.tenant)
    with RecordingProxy(MOTO_PORT) as proxy:
        via = {"KOPTER_AWS_ENDPOINT_URL": proxy.url, "KOPTER_TASK_TIME_LIMIT": "60"}
        worker = workers.start(
            "iam-customer", "describer,backup,ingest,aggregator,notifications", env=via
        )
        workers.wait_ready(worker)
        checked = kopter.rows("accounts", "check", *as_tenant, "--account-id", c.account, env=via)
        kopter("accounts", "check", *as_tenant, "--account-id", c.account, "--on-worker", env=via)
        kopter("run", "describer", *as_tenant, "--wait", env=via)
        ran = kopter("run", "backup", *as_tenant, "--wait", env=via).stdout
        kopter("ingest", f"s3://{bucket}/{estate['key']}", *as_tenant, env=via)
        kopter(
            "backfill",
            *as_tenant,
            "--account",
            c.account,
            "--since",
            "2026-03-01",
            "--until",
            "2026-03-01",
            env=via,
        )
        wait_for(
            lambda: len(kopter.rows("audit", *as_tenant, "--limit", "10")) == 5,
            60,
            "both log files ingested",
        )
    # The check tried each permission of the role, in each region, and each worked.
    assert {row["name"].split(":")[0] for row in checked} == {"assume-role"} | {
        p.sid
        for p in customer.PERMISSIONS
        if p.sid not in ("SnapshotVolumes", "TagSnapshotsOnCreate", "DecryptTrailLogs")
    }
    assert all(row["ok"] for row in checked), checked
    assert [r["detail"] for r in checked if r["name"] == "CreateKopterSnapshots:us-east-1"] == [
        "allowed (dry run)"
    ]
    summary = json.loads(ran[ran.index("{") :])  # the backup job made one and deleted one
    assert (summary["created"], summary["expired"]) == (1, 1), summary

    wanted = customer_authorizations(proxy.requests, proxy.responses)
    access, trust = _role_policies(c)
    decisions = evaluate(wanted, [access])
    denied = [
        f"{w} -> {d.decision} {d.errors or ''}"
        for w, d in zip(wanted, decisions, strict=True)
        if not d.allowed
    ]
    assert not denied, "kopter made requests its role does not allow:\n" + "\n".join(denied)
    # Least privilege: every statement was needed by some request kopter made.
    used = {sid for d in decisions for sid in d.allowed_by}
    granted = {s["Sid"] for s in access["Statement"]}
    assert granted - used == set(), f"granted but never used: {granted - used}"
    # ... and each is necessary: without it, a request kopter made is refused (what a new call
    # without its permission meets).
    for sid in sorted(granted):
        fewer = {**access, "Statement": [s for s in access["Statement"] if s["Sid"] != sid]}
        assert not all(d.allowed for d in evaluate(wanted, [fewer])), f"{sid} is not needed"

    assume = [parse_qs(r.body.decode()) for r in proxy.requests if b"Action=AssumeRole&" in r.body]
    assert assume, "kopter assumed no role"
    assume_requests = [
        Authorization(
            KOPTER_PRINCIPAL,
            "sts:AssumeRole",
            form["RoleArn"][0],
            c.account,
            {"sts:ExternalId": form["ExternalId"][0]},
            "kopter's AssumeRole",
        )
        for form in assume
    ]
    decisions = evaluate(assume_requests, [_kopter_worker_policy()], trust)
    assert all(d.allowed for d in decisions), decisions


def _denied_table(c: Connected, other: Connected, bucket: str) -> list[tuple[Authorization, Any]]:
    session = f"arn:aws:sts::{c.account}:assumed-role/kopter/kopter"
    snapshot = "arn:aws:ec2:us-east-1::snapshot/snap-0123456789abcdef0"
    instance = f"arn:aws:ec2:us-east-1:{c.account}:instance/i-0123456789abcdef0"
    logs = f"arn:aws:s3:::{bucket}/{PREFIX}/AWSLogs"
    kopter_tags = {
        f"aws:ResourceTag/{backup.MANAGED}": "true",
        f"aws:ResourceTag/{backup.TENANT}": c.tenant,
    }
    role = f"arn:aws:iam::{c.account}:role/kopter"

    def acting(
        action: str, resource: str, context: dict | None = None, what: str = ""
    ) -> Authorization:
        return Authorization(session, action, resource, c.account, context or {}, what)

    def assuming(principal: str, context: dict, what: str) -> Authorization:
        return Authorization(principal, "sts:AssumeRole", role, c.account, context, what)

    return [
        (assuming(KOPTER_PRINCIPAL, {}, "no ExternalId"), "trust"),
        (
            assuming(
                KOPTER_PRINCIPAL,
                {"sts:ExternalId": other.external_id},
                "another account's ExternalId",
            ),
            "trust",
        ),
        (
            assuming(
                f"arn:aws:iam::{other.account}:role/kopter",
                {"sts:ExternalId": c.external_id},
                "another AWS account, with the right ExternalId",
            ),
            "trust",
        ),
        *(
            (acting(f"ec2:{a}", instance, what=f"{a} an instance"), "access")
            for a in (
                "StopInstances",
                "TerminateInstances",
                "RebootInstances",
                "ModifyInstanceAttribute",
                "RunInstances",
                "CreateImage",
            )
        ),
        (acting("ec2:DeleteSnapshot", snapshot, what="an untagged snapshot deleted"), "access"),
        (
            acting(
                "ec2:DeleteSnapshot",
                snapshot,
                {**kopter_tags, f"aws:ResourceTag/{backup.TENANT}": other.tenant},
                "another tenant's kopter snapshot deleted",
            ),
            "access",
        ),
        (
            acting(
                "ec2:CreateTags",
                snapshot,
                {f"aws:RequestTag/{backup.MANAGED}": "true"},
                "an existing snapshot tagged as kopter's",
            ),
            "access",
        ),
        (
            acting(
                "ec2:CreateSnapshot",
                f"arn:aws:ec2:us-east-1::snapshot/{NEW_SNAPSHOT}",
                {},
                "a snapshot without kopter's tags",
            ),
            "access",
        ),
        (
            acting(
                "ec2:ModifySnapshotAttribute", snapshot, kopter_tags, "a kopter snapshot shared"
            ),
            "access",
        ),
        (
            acting(
                "s3:GetObject",
                f"arn:aws:s3:::another-bucket/{PREFIX}/AWSLogs/{c.account}/x.json.gz",
                what="another bucket read",
            ),
            "access",
        ),
        (
            acting(
                "s3:GetObject",
                f"arn:aws:s3:::{bucket}/elsewhere/secret.txt",
                what="outside the prefix",
            ),
            "access",
        ),
        (
            acting(
                "s3:GetObject",
                f"{logs}/{other.account}/CloudTrail/x.json.gz",
                what="another account's logs",
            ),
            "access",
        ),
        (
            acting("s3:ListBucket", f"arn:aws:s3:::{bucket}", {}, "the whole bucket listed"),
            "access",
        ),
        (
            acting(
                "s3:ListBucket",
                f"arn:aws:s3:::{bucket}",
                {"s3:prefix": "elsewhere/"},
                "another prefix listed",
            ),
            "access",
        ),
        (acting("s3:PutObject", f"{logs}/{c.account}/x.json.gz", what="a log written"), "access"),
        (
            acting("s3:DeleteObject", f"{logs}/{c.account}/x.json.gz", what="a log deleted"),
            "access",
        ),
    ]


def test_what_must_never_be_possible_is_denied(kopter):
    bucket = f"trail-{new_account_id()}"
    c = kopter.connect("--cloudtrail-bucket", bucket, "--cloudtrail-prefix", PREFIX)
    other = kopter.connect()
    access, trust = _role_policies(c)
    table = _denied_table(c, other, bucket)
    trusted = [a for a, kind in table if kind == "trust"]
    acting = [a for a, kind in table if kind == "access"]
    decisions = evaluate(trusted, [_kopter_worker_policy()], trust) + evaluate(acting, [access])
    allowed = [
        str(a)
        for a, d in zip(trusted + acting, decisions, strict=True)
        if d.decision != "ImplicitlyDenied"
    ]
    assert not allowed, "allowed or not evaluated:\n" + "\n".join(allowed)
    # With a KMS key: that key decrypts through S3, no other key and not directly; without
    # one, nothing decrypts.
    without_key = access
    access, _ = _role_policies(c, kms=True)
    key = KMS_KEY.format(account=c.account)
    session = f"arn:aws:sts::{c.account}:assumed-role/kopter/kopter"
    decrypt = [
        Authorization(
            session, "kms:Decrypt", key, c.account, {"kms:ViaService": "s3.eu-west-1.amazonaws.com"}
        ),
        Authorization(
            session,
            "kms:Decrypt",
            key.replace("1234abcd", "9999abcd"),
            c.account,
            {"kms:ViaService": "s3.eu-west-1.amazonaws.com"},
        ),
        Authorization(session, "kms:Decrypt", key, c.account, {}),
    ]
    # KMS asks the key's own policy too: the default one, which defers to the account's IAM.
    key_policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{c.account}:root"},
                "Action": "kms:*",
                "Resource": "*",
            }
        ],
    }
    assert [d.decision for d in evaluate(decrypt, [access], key_policy)] == [
        "Allowed",
        "ImplicitlyDenied",
        "ImplicitlyDenied",
    ]
    assert [d.decision for d in evaluate(decrypt[:1], [without_key], key_policy)] == [
        "ImplicitlyDenied"
    ]


def test_the_quick_create_link_fills_the_published_template_with_the_accounts_values(kopter):
    published = "https://kopter-onboarding.s3.amazonaws.com/kopter-role.yaml"
    bucket = f"trail-{new_account_id()}"
    tenant = kopter.new_tenant()
    account = new_account_id()
    add = ("accounts", "add", "--tenant", tenant, "--account-id", account)
    trail = ("--cloudtrail-bucket", bucket, "--cloudtrail-prefix", PREFIX, "--with-trail")
    [row] = kopter.rows(*add, *trail, env={"KOPTER_ONBOARDING_TEMPLATE_URL": published})
    assert row["role_arn"] == f"arn:aws:iam::{account}:role/kopter"  # the template's role
    link = urlsplit(row["quick_create_link"])
    assert (link.scheme, link.netloc, link.path) == (
        "https",
        "us-east-1.console.aws.amazon.com",
        "/cloudformation/home",
    )
    page, _, query = link.fragment.partition("?")
    assert page == "/stacks/quickcreate"
    given = {k: v[0] for k, v in parse_qs(query, keep_blank_values=True).items()}
    assert given.pop("templateURL") == published
    assert given.pop("stackName") == "kopter"
    parameters = {k.removeprefix("param_"): v for k, v in given.items()}
    assert parameters["ExternalId"] == row["external_id"]
    assert (parameters["TenantId"], parameters["CreateTrail"]) == (tenant, "true")
    # The published (generic) template with the link's parameters creates exactly what the
    # account's own template creates.
    generic = customer.template(deployment(get_settings()))
    assert set(parameters) == set(generic["Parameters"])
    mine = json.loads(
        kopter("accounts", "template", "--tenant", tenant, "--account-id", account,
               "--with-trail", "--format", "json").stdout
    )  # fmt: skip
    assert resolve(generic, parameters, account, "us-east-1") == resolve(
        mine, {}, account, "us-east-1"
    )
    assert set(resolve(mine, {}, account, "us-east-1")) == {
        "KopterRole", "TrailBucket", "TrailBucketPolicy", "Trail"
    }  # fmt: skip
    # Without a published template, `add` says how to create the role instead.
    other = kopter(*add[:4], "--account-id", new_account_id()).stdout
    assert "kopter accounts template --tenant" in other and "quickcreate" not in other
