"""Tenants and accounts, end to end through the `kopter` command line and moto's server."""

import secrets

import pytest

from tests.conftest import new_account_id

pytestmark = pytest.mark.long


def test_tenant_add_prints_its_id_and_lists(kopter):
    name = f"acme-{secrets.token_hex(4)}"
    tenant_id = kopter("tenants", "add", name).stdout.strip()
    rows = kopter.rows("tenants", "list")
    assert (tenant_id, name) in [(r["tenant_id"], r["name"]) for r in rows]
    assert name in kopter("tenants", "list").stdout


def test_tenant_can_carry_the_customers_identity_id(kopter):
    identity = f"us-east-1:{secrets.token_hex(8)}"
    name = f"acme-{secrets.token_hex(4)}"
    assert kopter("tenants", "add", name, "--tenant-id", identity).stdout.strip() == identity
    again = kopter("tenants", "add", f"{name}-2", "--tenant-id", identity, ok=False)
    assert "already exists" in again.stderr


def test_duplicate_tenant_name_is_refused(kopter):
    name = f"acme-{secrets.token_hex(4)}"
    kopter("tenants", "add", name)
    result = kopter("tenants", "add", name, ok=False)
    assert result.stderr.strip() == f"kopter: error: a tenant named {name!r} already exists"


def test_account_add_prints_external_id_and_lists_it(kopter):
    tenant = kopter.new_tenant()
    account = new_account_id()
    out = kopter(
        "accounts",
        "add",
        "--tenant",
        tenant,
        "--account-id",
        account,
        "--role-arn",
        f"arn:aws:iam::{account}:role/kopter",
        "--regions",
        "us-east-1,eu-west-1",
        "--cloudtrail-bucket",
        "acme-trail",
        "--cloudtrail-prefix",
        "/org/",
    ).stdout
    external_id = out.splitlines()[1]
    assert external_id.startswith("kopter-") and len(external_id) == len("kopter-") + 32
    [row] = kopter.rows("accounts", "list", "--tenant", tenant)
    assert row["account_id"] == account
    assert row["external_id"] == external_id
    assert row["regions"] == ["us-east-1", "eu-west-1"]
    assert row["cloudtrail_bucket"] == "acme-trail"
    assert row["cloudtrail_prefix"] == "org"
    assert row["healthy"] is True


def test_external_ids_are_never_reused(kopter):
    assert len({kopter.connect().external_id for _ in range(3)}) == 3


def test_account_of_another_tenant_is_refused(kopter):
    first = kopter.connect()
    second = kopter.new_tenant()
    role = ["--account-id", first.account, "--role-arn", f"arn:aws:iam::{first.account}:role/r"]
    refused = kopter("accounts", "add", "--tenant", second, *role, ok=False)
    assert refused.stderr.strip() == (
        f"kopter: error: account {first.account} is already registered by another tenant"
    )
    again = kopter("accounts", "add", "--tenant", first.tenant, *role, ok=False)
    assert "already connected to this tenant" in again.stderr
    assert kopter.rows("accounts", "list", "--tenant", second) == []


@pytest.mark.parametrize(
    ("account", "role", "extra", "message"),
    [
        ("12345", "arn:aws:iam::12345:role/r", [], "is not 12 digits"),
        ("123456789012", "arn:aws:iam::123456789012:user/bob", [], "is not an IAM role ARN"),
        ("123456789012", "not-an-arn", [], "is not an IAM role ARN"),
        ("123456789012", "arn:aws:iam::210987654321:role/r", [], "is in account 210987654321"),
        (
            "123456789012",
            "arn:aws:iam::123456789012:role/r",
            ["--regions", "us-east-9"],
            "unknown region(s): us-east-9",
        ),
        (
            "123456789012",
            "arn:aws:iam::123456789012:role/r",
            ["--cloudtrail-bucket", "Bad_B"],
            "not a valid S3 bucket name",
        ),
        (
            "123456789012",
            "arn:aws:iam::123456789012:role/r",
            ["--cloudtrail-prefix", "x"],
            "needs --cloudtrail-bucket",
        ),
    ],
)
def test_malformed_accounts_are_refused_in_one_line(kopter, account, role, extra, message):
    tenant = kopter.new_tenant()
    result = kopter(
        "accounts",
        "add",
        "--tenant",
        tenant,
        "--account-id",
        account,
        "--role-arn",
        role,
        *extra,
        ok=False,
    )
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kopter: error: ") and message in lines[0]


def test_unknown_tenant_and_account_are_clear_errors(kopter):
    result = kopter("accounts", "list", "--tenant", "no-such-tenant", ok=False)
    assert "no tenant with id or name 'no-such-tenant'" in result.stderr
    tenant = kopter.new_tenant()
    result = kopter(
        "accounts", "check", "--tenant", tenant, "--account-id", "999999999999", ok=False
    )
    assert "account 999999999999 is not connected" in result.stderr


def test_check_assumes_the_role_and_records_health(kopter):
    c = kopter.connect("--regions", "eu-west-1")
    rows = kopter.rows("accounts", "check", "--tenant", c.tenant, "--account-id", c.account)
    # Each permission of the role, tried; the snapshot rights wait for a volume and a snapshot.
    assert [r["name"] for r in rows] == [
        "assume-role",
        "DescribeInstances:eu-west-1",
        "DescribeSnapshots:eu-west-1",
        "CreateKopterSnapshots:eu-west-1",
        "DeleteKopterSnapshots:eu-west-1",
    ]
    assert all(r["ok"] for r in rows)
    assert rows[3]["detail"] == "not tried: no instance volume seen"
    assert f"arn:aws:sts::{c.account}:assumed-role/kopter/" in rows[0]["detail"]
    [listed] = kopter.rows("accounts", "list", "--tenant", c.tenant)
    assert listed["healthy"] is True and listed["last_success_at"]


def test_check_of_a_missing_bucket_marks_the_account_unhealthy(kopter):
    c = kopter.connect("--cloudtrail-bucket", "no-such-bucket-here")
    result = kopter("accounts", "check", "--tenant", c.tenant, "--account-id", c.account, ok=False)
    assert "NoSuchBucket" in result.stdout
    [listed] = kopter.rows("accounts", "list", "--tenant", c.tenant)
    assert listed["healthy"] is False
    assert listed["health_reason"].startswith("ListTrailLogs: NoSuchBucket")


def test_unreachable_aws_is_one_line_not_a_traceback(kopter):
    result = kopter(
        "tenants", "list", env={"KOPTER_AWS_ENDPOINT_URL": "http://127.0.0.1:9"}, ok=False
    )
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kopter: error:"), result.stderr


def test_bad_setting_is_one_line(kopter):
    result = kopter("tenants", "list", env={"KOPTER_VISIBILITY_TIMEOUT": "soon"}, ok=False)
    assert result.stderr.strip() == (
        "kopter: error: KOPTER_VISIBILITY_TIMEOUT='soon' is not a whole number"
    )
