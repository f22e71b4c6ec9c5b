"""The policy of a Cognito identity pool's authenticated role: a signed-in customer's browser
reads its own items and nothing else.

A tenant's id is its Cognito identity id (`kopter tenants add NAME --tenant-id <identity id>`,
as the read API's gateway mode maps ``cognitoIdentityId`` to the tenant), so the identity IAM
substitutes for ``${cognito-identity.amazonaws.com:sub}`` is the tenant id every tenant table
leads with: exactly (``tenant``) or as the first part of a composite key (``tenant#…``; a tenant
id never holds ``#``). ``dynamodb:LeadingKeys`` must be one of those two forms for every key the
request names (``ForAllValues``), and must be present (the ``Null`` guard: ``ForAllValues`` alone
passes a request that names no key). Only GetItem, BatchGetItem and Query: no Scan, no write.
"""

from __future__ import annotations

from typing import Any

from kopter.iam import arns
from kopter.settings import Settings
from kopter.tables import ALL_MODELS, base_name

IDENTITY = "${cognito-identity.amazonaws.com:sub}"
# Tables whose partition key, and every index's, is the tenant id or `tenant#…`. Left out:
# Tenants (the customer list), AwsAccounts (ExternalIds, which the read API never shows), Global
# (kopter's own markers) and Ec2Prices (keyed by region, no tenant's).
TABLES = (
    "AuditLogEvents",
    "AuditDigests",
    "Ec2Instances",
    "Ec2Events",
    "PriceGraphData",
    "Ec2Snapshots",
    "FrontendNotifications",
    "Findings",
    "DetectionRules",
)


def indexes(table: str) -> list[str]:
    [model] = [m for m in ALL_MODELS if base_name(m) == table]
    return [i["index_name"] for i in model._get_schema()["global_secondary_indexes"]]


def policy(settings: Settings, bucket: str | None = None) -> dict[str, Any]:
    base = (
        f"arn:{arns.partition(settings.region)}:dynamodb:{settings.region}:"
        f"{arns.kopter_account(settings)}:table/{settings.prefix}"
    )
    resources = []
    for table in TABLES:
        resources.append(base + table)
        resources += [f"{base}{table}/index/{index}" for index in indexes(table)]
    statements: list[dict[str, Any]] = [
        {
            "Sid": "OwnItems",
            "Effect": "Allow",
            "Action": ["dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query"],
            "Resource": resources,
            "Condition": {
                "ForAllValues:StringLike": {"dynamodb:LeadingKeys": [IDENTITY, f"{IDENTITY}#*"]},
                "Null": {"dynamodb:LeadingKeys": "false"},
            },
        }
    ]
    if bucket:
        bucket_arn = f"arn:{arns.partition(settings.region)}:s3:::{bucket}"
        statements += [
            {
                "Sid": "ListOwnPrefix",
                "Effect": "Allow",
                "Action": ["s3:ListBucket"],
                "Resource": bucket_arn,
                "Condition": {"StringLike": {"s3:prefix": [f"{IDENTITY}/", f"{IDENTITY}/*"]}},
            },
            {
                "Sid": "ReadOwnPrefix",
                "Effect": "Allow",
                "Action": ["s3:GetObject"],
                "Resource": f"{bucket_arn}/{IDENTITY}/*",
            },
        ]
    return {"Version": "2012-10-17", "Statement": statements}
