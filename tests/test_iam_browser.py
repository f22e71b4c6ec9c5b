"""The Cognito authenticated role's policy confines a browser to its identity's items.

Evaluated with iam-simulate's unsafe mode, which keeps ``cognito-identity.amazonaws.com:sub``
(its checked mode drops a context key it does not know for DynamoDB actions). Allowed: a Query,
GetItem or BatchGetItem of each covered table and index on the identity's own partition, in the
form the table's key has (the tenant id, or ``tenant#…``, read from the models' schemas), and
reads of the identity's S3 prefix; without any one statement, some of those are refused.
Denied (the evaluator's answer, not merely "not allowed"): another identity's partition, a
request naming no partition key, one naming its own and another's, a lookalike identity, Scan,
writes, kopter's own tables, another identity's prefix listed or read.
"""

from __future__ import annotations

import pytest

from kopter.iam import browser
from kopter.settings import get_settings
from kopter.tables import ALL_MODELS
from tests.conftest import TEST_ENV
from tests.support.iamsim import Authorization, evaluate

pytestmark = pytest.mark.unit

ACCOUNT = TEST_ENV["KOPTER_AWS_ACCOUNT_ID"]
ME = "us-east-1:0b1d9a52-6c8f-4f7e-9d0a-2f3c4b5a6e7f"
OTHER = "us-east-1:7e6a5b4c-3f2c-4a0d-8e9d-f7c8e6a5d2b1"
BUCKET = "kopter-browser-files"
SESSION = f"arn:aws:sts::{ACCOUNT}:assumed-role/kopter-browser/CognitoIdentityCredentials"


def _request(action: str, resource: str, leading: list[str] | None, me: str = ME) -> Authorization:
    context: dict = {"cognito-identity.amazonaws.com:sub": me}
    if leading is not None:
        context["dynamodb:LeadingKeys"] = leading
    return Authorization(SESSION, action, resource, ACCOUNT, context)


def _s3(action: str, key: str | None = None, prefix: str | None = None) -> Authorization:
    """An S3 request as ME: a key of the bucket, or the bucket listed under ``prefix``."""
    context = {"cognito-identity.amazonaws.com:sub": ME}
    if prefix is not None:
        context["s3:prefix"] = prefix
    resource = f"arn:aws:s3:::{BUCKET}" + (f"/{key}" if key else "")
    return Authorization(SESSION, action, resource, ACCOUNT, context)


def _partitions() -> list[tuple[str, str]]:
    """(resource ARN, the identity's partition key there) for each covered table and index."""
    settings = get_settings()
    base = f"arn:aws:dynamodb:{settings.region}:{ACCOUNT}:table/"
    found = []
    for model in ALL_MODELS:
        table = model.Meta.table_name.removeprefix(settings.prefix)
        if table not in browser.TABLES:
            continue
        schema = model._get_schema()
        for part in (schema, *schema["global_secondary_indexes"]):
            [hash_key] = [k["AttributeName"] for k in part["key_schema"] if k["KeyType"] == "HASH"]
            key = ME if hash_key == "tenant_id" else f"{ME}#123456789012"
            index = f"/index/{part['index_name']}" if "index_name" in part else ""
            found.append((f"{base}{model.Meta.table_name}{index}", key))
    return found


def test_a_browser_reads_its_own_items_and_nothing_else():
    settings = get_settings()
    policy = browser.policy(settings, BUCKET)
    partitions = _partitions()
    assert len(partitions) == 9 + 5  # nine tables, five indexes: all lead with the tenant
    allowed = [
        _request(action, resource, [key])
        for resource, key in partitions
        for action in ("dynamodb:Query", "dynamodb:GetItem", "dynamodb:BatchGetItem")
    ] + [
        _s3("s3:ListBucket", prefix=f"{ME}/reports/"),
        _s3("s3:GetObject", f"{ME}/reports/a.csv"),
    ]
    decisions = evaluate(allowed, [policy], unsafe=True)
    refused = [str(r) for r, d in zip(allowed, decisions, strict=True) if not d.allowed]
    assert not refused, "denied its own items:\n" + "\n".join(refused)
    # Each statement is needed: without it, some of those requests are refused.
    for sid in [s["Sid"] for s in policy["Statement"]]:
        fewer = {**policy, "Statement": [s for s in policy["Statement"] if s["Sid"] != sid]}
        assert not all(d.allowed for d in evaluate(allowed, [fewer], unsafe=True)), sid

    audit, _ = partitions[0]
    prefix = settings.prefix
    table = f"arn:aws:dynamodb:{settings.region}:{ACCOUNT}:table/{prefix}"
    denied = [
        _request("dynamodb:Query", audit, [OTHER]),
        _request("dynamodb:Query", audit, [f"{OTHER}#123456789012"]),
        _request("dynamodb:Query", audit, None),  # no partition named: the Null guard
        _request("dynamodb:BatchGetItem", audit, [ME, OTHER]),
        _request("dynamodb:Query", audit, [ME + "0"]),  # an identity that extends mine
        _request("dynamodb:Scan", audit, None),
        _request("dynamodb:Scan", audit, [ME]),
        _request("dynamodb:PutItem", audit, [ME]),
        _request("dynamodb:UpdateItem", f"{table}FrontendNotifications", [ME]),
        _request("dynamodb:GetItem", f"{table}Global", [ME]),
        _request("dynamodb:GetItem", f"{table}AwsAccounts", [ME]),
        _request("dynamodb:Query", f"{table}Ec2Prices", ["us-east-1"]),
        _request("dynamodb:Query", audit.replace(prefix, "another-deployment-"), [ME]),
        _s3("s3:ListBucket", prefix=f"{OTHER}/"),  # another identity's prefix listed
        _s3("s3:ListBucket"),  # the whole bucket
        _s3("s3:GetObject", f"{OTHER}/reports/a.csv"),
        _s3("s3:PutObject", f"{ME}/x"),
    ]
    decisions = evaluate(denied, [policy], unsafe=True)
    # Denied, not merely "not allowed": an answer the evaluator could not give is a failure.
    let_through = [
        f"{r} -> {d.decision}"
        for r, d in zip(denied, decisions, strict=True)
        if d.decision != "ImplicitlyDenied"
    ]
    assert not let_through, "allowed or not evaluated:\n" + "\n".join(let_through)
    # The same requests as the other identity: its own partition is allowed, mine is not.
    as_other = [
        _request("dynamodb:Query", audit, [OTHER], OTHER),
        _request("dynamodb:Query", audit, [ME], OTHER),
    ]
    swapped = evaluate(as_other, [policy], unsafe=True)
    assert [d.decision for d in swapped] == ["Allowed", "ImplicitlyDenied"]
