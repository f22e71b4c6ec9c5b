"""The role a customer creates for kopter, as a CloudFormation template, and its quick-create link.

The role trusts kopter's AWS account only with the account's ExternalId, and grants exactly what
kopter's code calls in a customer account (``PERMISSIONS``; a test records every request kopter
sends there and proves each is allowed): describing instances and snapshots, snapshots created,
tagged and deleted only under kopter's tags, and reads of the registered CloudTrail bucket under
the registered prefix. Nothing stops, terminates or changes an instance.

One template serves every customer: what differs (tenant, ExternalId, bucket, prefix, KMS key,
whether to create a trail) is a parameter, so an operator publishes it once and each customer's
quick-create link fills the parameters in; ``kopter accounts template --tenant T --account-id A``
writes it with that account's values as the defaults.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import yaml

from kopter.deploy.cfn import private_bucket
from kopter.ec2.backup import MANAGED, TENANT

ROLE_NAME = "kopter"
TRAIL_NAME = "kopter"
STACK_NAME = "kopter"
EXTERNAL_ID_PATTERN = "^kopter-[0-9a-f]{32}$"
# Every CloudTrail log key kopter reads lies under one of these, below `<prefix>/AWSLogs/`: a
# trail of the account, or an organization trail (its id, then the account).
LOG_ROOTS = ("${AWS::AccountId}/", "o-*/${AWS::AccountId}/")

# The `Logs` variable of the ARNs below: `<prefix>/AWSLogs/`, or `AWSLogs/` without a prefix.
_LOGS = {"Fn::If": ["HasPrefix", {"Fn::Sub": "${CloudTrailPrefix}/AWSLogs/"}, "AWSLogs/"]}
_NO_VALUE = {"Ref": "AWS::NoValue"}


@dataclass(frozen=True)
class Permission:
    """One statement of the role's policy: what kopter does with it, and whether it is optional
    (granted only when the template's parameters ask for it)."""

    sid: str
    purpose: str
    statement: dict[str, Any]
    condition: str | None = None  # the template condition that includes it


def _sub(text: str) -> dict[str, Any]:
    return {"Fn::Sub": [text, {"Logs": _LOGS}]} if "${Logs}" in text else {"Fn::Sub": text}


PERMISSIONS: tuple[Permission, ...] = (
    Permission(
        "DescribeInstances",
        "the hourly describer, the backup job and `kopter accounts check` list instances "
        "(EC2 grants Describe calls on every resource or none)",
        {"Effect": "Allow", "Action": ["ec2:DescribeInstances"], "Resource": "*"},
    ),
    Permission(
        "DescribeSnapshots",
        "the backup job finds the snapshots it made, by their tags",
        {"Effect": "Allow", "Action": ["ec2:DescribeSnapshots"], "Resource": "*"},
    ),
    Permission(
        "SnapshotVolumes",
        "the backup job snapshots the volumes of instances tagged for backup",
        {
            "Effect": "Allow",
            "Action": ["ec2:CreateSnapshot"],
            "Resource": _sub("arn:${AWS::Partition}:ec2:*:${AWS::AccountId}:volume/*"),
        },
    ),
    Permission(
        "CreateKopterSnapshots",
        "… and every snapshot it creates carries kopter's tags for this tenant from the start",
        {
            "Effect": "Allow",
            "Action": ["ec2:CreateSnapshot"],
            "Resource": _sub("arn:${AWS::Partition}:ec2:*::snapshot/*"),
            "Condition": {
                "StringEquals": {
                    f"aws:RequestTag/{MANAGED}": "true",
                    f"aws:RequestTag/{TENANT}": {"Ref": "TenantId"},
                }
            },
        },
    ),
    Permission(
        "TagSnapshotsOnCreate",
        "tags may be written only as part of CreateSnapshot: kopter can never tag an existing "
        "snapshot as its own",
        {
            "Effect": "Allow",
            "Action": ["ec2:CreateTags"],
            "Resource": _sub("arn:${AWS::Partition}:ec2:*::snapshot/*"),
            "Condition": {"StringEquals": {"ec2:CreateAction": "CreateSnapshot"}},
        },
    ),
    Permission(
        "DeleteKopterSnapshots",
        "expired backups are deleted; only snapshots tagged as kopter's for this tenant",
        {
            "Effect": "Allow",
            "Action": ["ec2:DeleteSnapshot"],
            "Resource": _sub("arn:${AWS::Partition}:ec2:*::snapshot/*"),
            "Condition": {
                "StringEquals": {
                    f"aws:ResourceTag/{MANAGED}": "true",
                    f"aws:ResourceTag/{TENANT}": {"Ref": "TenantId"},
                }
            },
        },
    ),
    Permission(
        "ListTrailLogs",
        "backfill and `kopter accounts check` list the account's logs under the prefix",
        {
            "Effect": "Allow",
            "Action": ["s3:ListBucket"],
            "Resource": _sub("arn:${AWS::Partition}:s3:::${CloudTrailBucket}"),
            "Condition": {
                "StringLike": {
                    "s3:prefix": [_sub("${Logs}")] + [_sub(f"${{Logs}}{r}*") for r in LOG_ROOTS]
                }
            },
        },
        "HasBucket",
    ),
    Permission(
        "ReadTrailLogs",
        "ingest reads the account's log files, nothing else in the bucket",
        {
            "Effect": "Allow",
            "Action": ["s3:GetObject"],
            "Resource": [
                _sub(f"arn:${{AWS::Partition}}:s3:::${{CloudTrailBucket}}/${{Logs}}{r}*")
                for r in LOG_ROOTS
            ],
        },
        "HasBucket",
    ),
    Permission(
        "DecryptTrailLogs",
        "log files the trail encrypts with KMS are decrypted with its key, through S3 only",
        {
            "Effect": "Allow",
            "Action": ["kms:Decrypt"],
            "Resource": {"Ref": "CloudTrailKmsKeyArn"},
            "Condition": {"StringLike": {"kms:ViaService": "s3.*.amazonaws.com"}},
        },
        "HasKmsKey",
    ),
)


@dataclass(frozen=True)
class Deployment:
    """What the template needs to know of kopter's own side."""

    kopter_account_id: str
    region: str  # kopter's region: its raw queue's, where a created trail's bucket must be
    raw_queue_arn: str


@dataclass(frozen=True)
class Defaults:
    """One account's values, written as the parameters' defaults (all empty: the generic
    template that an operator publishes for quick-create links)."""

    tenant_id: str = ""
    external_id: str = ""
    cloudtrail_bucket: str = ""
    cloudtrail_prefix: str = ""
    kms_key_arn: str = ""
    with_trail: bool = False

    def parameters(self) -> dict[str, str]:
        return {
            "TenantId": self.tenant_id,
            "ExternalId": self.external_id,
            "CloudTrailBucket": self.cloudtrail_bucket,
            "CloudTrailPrefix": self.cloudtrail_prefix,
            "CloudTrailKmsKeyArn": self.kms_key_arn,
            "CreateTrail": "true" if self.with_trail else "false",
        }


def template(deployment: Deployment, defaults: Defaults | None = None) -> dict[str, Any]:
    """The customer's CloudFormation template."""
    defaults = defaults or Defaults()
    given = defaults.parameters()
    parameters = _parameters()
    for name, spec in parameters.items():
        # No default for what the customer must give, nor for an empty bucket: cfn-lint would
        # check the bucket's ARNs with it (they are left out then, by condition).
        if given[name] or name not in ("TenantId", "ExternalId", "CloudTrailBucket"):
            spec["Default"] = given[name]
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": "The role kopter assumes in this account (read-only describe rights, "
        "snapshots under kopter's tags, reads of the CloudTrail bucket under its prefix), "
        "and optionally a trail that notifies kopter of each log file.",
        "Parameters": parameters,
        "Conditions": {
            "HasBucket": {"Fn::Not": [{"Fn::Equals": [{"Ref": "CloudTrailBucket"}, ""]}]},
            "HasPrefix": {"Fn::Not": [{"Fn::Equals": [{"Ref": "CloudTrailPrefix"}, ""]}]},
            "HasKmsKey": {"Fn::Not": [{"Fn::Equals": [{"Ref": "CloudTrailKmsKeyArn"}, ""]}]},
            "CreateTrail": {"Fn::Equals": [{"Ref": "CreateTrail"}, "true"]},
        },
        "Rules": {
            "TrailNeedsBucket": {
                "RuleCondition": {"Fn::Equals": [{"Ref": "CreateTrail"}, "true"]},
                "Assertions": [
                    {
                        "Assert": {"Fn::Not": [{"Fn::Equals": [{"Ref": "CloudTrailBucket"}, ""]}]},
                        "AssertDescription": "a trail needs CloudTrailBucket, the bucket to create",
                    },
                    {
                        "Assert": {"Fn::Equals": [{"Ref": "AWS::Region"}, deployment.region]},
                        "AssertDescription": f"S3 notifies only a queue in its own region: "
                        f"create the stack in {deployment.region}",
                    },
                ],
            }
        },
        "Resources": {"KopterRole": _role(deployment), **_trail(deployment)},
        "Outputs": {
            "RoleArn": {"Value": {"Fn::GetAtt": ["KopterRole", "Arn"]}},
            "TrailBucket": {"Condition": "CreateTrail", "Value": {"Ref": "CloudTrailBucket"}},
        },
    }


def _parameters() -> dict[str, dict[str, Any]]:
    return {
        "TenantId": {
            "Type": "String",
            "Description": "Your kopter tenant id (kopter tags the snapshots it makes with it)",
            "AllowedPattern": "^[\\w:.@-]{1,128}$",
        },
        "ExternalId": {
            "Type": "String",
            "Description": "The ExternalId `kopter accounts add` printed for this account",
            "AllowedPattern": EXTERNAL_ID_PATTERN,
        },
        "CloudTrailBucket": {
            "Type": "String",
            "Description": "The bucket your trail writes to (created when CreateTrail is true); "
            "empty: no CloudTrail ingest",
            "AllowedPattern": "^$|^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$",
        },
        "CloudTrailPrefix": {
            "Type": "String",
            "Description": "The trail's key prefix in that bucket, if any (no slashes at the ends)",
            "AllowedPattern": "^$|^[^/].*[^/]$|^[^/]$",
        },
        "CloudTrailKmsKeyArn": {
            "Type": "String",
            "Description": "The KMS key that encrypts the trail's log files, if any",
            "AllowedPattern": "^$|^arn:aws[a-z-]*:kms:[a-z0-9-]+:\\d{12}:key/[\\w-]+$",
        },
        "CreateTrail": {
            "Type": "String",
            "Description": "true: create a multi-region trail, its bucket, and the bucket's "
            "notifications to kopter",
            "AllowedValues": ["true", "false"],
        },
    }


def trust_policy(kopter_account_id: str, external_id: Any) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {
                    "AWS": {"Fn::Sub": f"arn:${{AWS::Partition}}:iam::{kopter_account_id}:root"}
                },
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"sts:ExternalId": external_id}},
            }
        ],
    }


def access_policy() -> dict[str, Any]:
    statements: list[Any] = []
    for permission in PERMISSIONS:
        statement = {"Sid": permission.sid, **permission.statement}
        if permission.condition:
            statements.append({"Fn::If": [permission.condition, statement, _NO_VALUE]})
        else:
            statements.append(statement)
    return {"Version": "2012-10-17", "Statement": statements}


def _role(deployment: Deployment) -> dict[str, Any]:
    return {
        "Type": "AWS::IAM::Role",
        "Properties": {
            "RoleName": ROLE_NAME,
            "Description": "kopter (cloud operations) reads this account; see its policy",
            "MaxSessionDuration": 3600,
            "AssumeRolePolicyDocument": trust_policy(
                deployment.kopter_account_id, {"Ref": "ExternalId"}
            ),
            "Policies": [{"PolicyName": "kopter", "PolicyDocument": access_policy()}],
        },
    }


def _trail(deployment: Deployment) -> dict[str, Any]:
    bucket_arn = "arn:${AWS::Partition}:s3:::${CloudTrailBucket}"
    trail_arn = (
        "arn:${AWS::Partition}:cloudtrail:${AWS::Region}:${AWS::AccountId}:trail/" + TRAIL_NAME
    )
    from_trail = {"StringEquals": {"aws:SourceArn": {"Fn::Sub": trail_arn}}}
    return {
        "TrailBucket": {
            "Type": "AWS::S3::Bucket",
            "Condition": "CreateTrail",
            "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Retain",
            "Properties": {
                "BucketName": {"Ref": "CloudTrailBucket"},
                **private_bucket(),
                # Each log file is announced to kopter's raw queue, whose policy admits this
                # bucket once the account is registered (`kopter accounts add`).
                "NotificationConfiguration": {
                    "QueueConfigurations": [
                        {
                            "Event": "s3:ObjectCreated:*",
                            "Queue": deployment.raw_queue_arn,
                            "Filter": {
                                "S3Key": {
                                    "Rules": [
                                        {"Name": "prefix", "Value": _sub("${Logs}")},
                                        {"Name": "suffix", "Value": ".json.gz"},
                                    ]
                                }
                            },
                        }
                    ]
                },
            },
        },
        "TrailBucketPolicy": {
            "Type": "AWS::S3::BucketPolicy",
            "Condition": "CreateTrail",
            "Properties": {
                "Bucket": {"Ref": "TrailBucket"},
                "PolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Sid": "CloudTrailAclCheck",
                            "Effect": "Allow",
                            "Principal": {"Service": "cloudtrail.amazonaws.com"},
                            "Action": "s3:GetBucketAcl",
                            "Resource": {"Fn::Sub": bucket_arn},
                            "Condition": from_trail,
                        },
                        {
                            "Sid": "CloudTrailWrite",
                            "Effect": "Allow",
                            "Principal": {"Service": "cloudtrail.amazonaws.com"},
                            "Action": "s3:PutObject",
                            "Resource": _sub(f"{bucket_arn}/${{Logs}}${{AWS::AccountId}}/*"),
                            "Condition": from_trail,
                        },
                        {
                            "Sid": "DenyInsecureTransport",
                            "Effect": "Deny",
                            "Principal": "*",
                            "Action": "s3:*",
                            "Resource": [
                                {"Fn::Sub": bucket_arn},
                                {"Fn::Sub": f"{bucket_arn}/*"},
                            ],
                            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                        },
                    ],
                },
            },
        },
        "Trail": {
            "Type": "AWS::CloudTrail::Trail",
            "Condition": "CreateTrail",
            "DependsOn": ["TrailBucketPolicy"],
            "Properties": {
                "TrailName": TRAIL_NAME,
                "S3BucketName": {"Ref": "TrailBucket"},
                "S3KeyPrefix": {"Fn::If": ["HasPrefix", {"Ref": "CloudTrailPrefix"}, _NO_VALUE]},
                "IsLogging": True,
                "IsMultiRegionTrail": True,
                "IncludeGlobalServiceEvents": True,
                "EnableLogFileValidation": True,
            },
        },
    }


def render(document: dict[str, Any], form: str) -> str:
    """The template as CloudFormation reads it: ``json`` or ``yaml`` (intrinsic functions in
    their long form, which YAML templates accept as they are)."""
    if form == "json":
        return json.dumps(document, indent=2) + "\n"
    return yaml.dump(document, Dumper=_NoAliases, sort_keys=False, width=100)


class _NoAliases(yaml.SafeDumper):
    """CloudFormation refuses YAML aliases, which PyYAML writes for a value used twice."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def quick_create_link(template_url: str, region: str, defaults: Defaults) -> str:
    """CloudFormation's quick-create page for the published template, every parameter filled."""
    query = urlencode(
        {
            "templateURL": template_url,
            "stackName": STACK_NAME,
            **{f"param_{k}": v for k, v in defaults.parameters().items()},
        },
        quote_via=quote,
    )
    return (
        f"https://{region}.console.aws.amazon.com/cloudformation/home?region={region}"
        f"#/stacks/quickcreate?{query}"
    )
