"""CloudFormation's vocabulary, as plain data: intrinsic functions, a template being built, and
kopter's own definitions (policies, settings) turned into values CloudFormation resolves."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

from kopter.settings import Settings

NO_VALUE = {"Ref": "AWS::NoValue"}
_MARK = re.compile(r"⟪([A-Za-z0-9:.]+)⟫")


def ref(name: str) -> dict[str, Any]:
    return {"Ref": name}


def sub(text: str) -> dict[str, Any]:
    return {"Fn::Sub": text}


def get_att(resource: str, attribute: str) -> dict[str, Any]:
    return {"Fn::GetAtt": [resource, attribute]}


def if_(condition: str, then: Any, otherwise: Any = NO_VALUE) -> dict[str, Any]:
    return {"Fn::If": [condition, then, otherwise]}


def equals(a: Any, b: Any) -> dict[str, Any]:
    return {"Fn::Equals": [a, b]}


def not_(condition: dict[str, Any]) -> dict[str, Any]:
    return {"Fn::Not": [condition]}


def logical(name: str) -> str:
    """A logical id from a kopter name: ``cloudtrail-notifications``, CloudtrailNotifications."""
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[^A-Za-z0-9]+", name))


def mark(name: str) -> str:
    """A stand-in for ``${name}`` inside kopter's own values (a policy, a document): where
    ``resolved`` finds one, the string becomes an ``Fn::Sub`` of it."""
    return f"⟪{name}⟫"


def resolved(value: Any) -> Any:
    """``value`` with every string holding a mark made an ``Fn::Sub`` (a ``${`` already in it
    escaped, so it stays literal)."""
    if isinstance(value, dict):
        return {k: resolved(v) for k, v in value.items()}
    if isinstance(value, list):
        return [resolved(v) for v in value]
    if isinstance(value, str) and _MARK.search(value):
        return sub(_MARK.sub(r"${\1}", value.replace("${", "${!")))
    return value


# The deployment's names as kopter's own code spells them, resolved by CloudFormation.
PREFIX = "Prefix"


def symbolic(settings: Settings, **overrides: Any) -> Settings:
    """``settings`` naming the stack's deployment: its prefix, region, account and partition
    left to CloudFormation. kopter's policies made from these (``kopter/iam/own.py``) become,
    through ``resolved``, the stack's own."""
    return dataclasses.replace(
        settings,
        prefix=mark(PREFIX),
        region=mark("AWS::Region"),
        aws_account_id=mark("AWS::AccountId"),
        **overrides,
    )


def partitioned(value: Any) -> Any:
    """``arn:aws:`` made the stack's partition (kopter's policies read it from the region)."""
    if isinstance(value, dict):
        return {k: partitioned(v) for k, v in value.items()}
    if isinstance(value, list):
        return [partitioned(v) for v in value]
    if isinstance(value, str):
        return value.replace("arn:aws:", f"arn:{mark('AWS::Partition')}:")
    return value


def private_bucket() -> dict[str, Any]:
    """An S3 bucket's properties that keep it private: encrypted, no public access, no ACLs."""
    return {
        "BucketEncryption": {
            "ServerSideEncryptionConfiguration": [
                {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
            ]
        },
        "PublicAccessBlockConfiguration": {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        },
        "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
    }


def skip(*checks: tuple[str, str]) -> dict[str, Any]:
    """Metadata telling checkov that a check does not apply here, and why (each id with its
    reason, beside the resource it concerns)."""
    return {"checkov": {"skip": [{"id": check, "comment": reason} for check, reason in checks]}}


@dataclass
class Template:
    """A template being built: each part added once, under a unique name."""

    description: str
    parameters: dict[str, Any] = field(default_factory=dict)
    conditions: dict[str, Any] = field(default_factory=dict)
    resources: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)

    def _put(self, part: dict[str, Any], name: str, value: Any) -> None:
        if name in part:
            raise ValueError(f"{name} is defined twice")
        part[name] = value

    def parameter(self, name: str, **spec: Any) -> dict[str, Any]:
        self._put(self.parameters, name, spec)
        return ref(name)

    def condition(self, name: str, expression: dict[str, Any]) -> str:
        self._put(self.conditions, name, expression)
        return name

    def add(
        self,
        name: str,
        kind: str,
        properties: dict[str, Any],
        *,
        condition: str | None = None,
        depends_on: list[str] | None = None,
        retain: bool = False,
        metadata: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        resource: dict[str, Any] = {"Type": kind}
        if condition:
            resource["Condition"] = condition
        if depends_on:
            resource["DependsOn"] = depends_on
        if retain:
            # Customers' data outlives the stack: deleting or replacing it keeps the data.
            resource["DeletionPolicy"] = "Retain"
            resource["UpdateReplacePolicy"] = "Retain"
        if metadata:
            resource["Metadata"] = metadata
        resource["Properties"] = properties
        self._put(self.resources, name, resource)
        return ref(name)

    def output(self, name: str, value: Any, description: str, condition: str | None = None) -> None:
        output: dict[str, Any] = {"Description": description, "Value": value}
        if condition:
            output["Condition"] = condition
        self._put(self.outputs, name, output)

    def document(self) -> dict[str, Any]:
        return {
            "AWSTemplateFormatVersion": "2010-09-09",
            "Description": self.description,
            "Parameters": self.parameters,
            "Conditions": self.conditions,
            "Resources": self.resources,
            "Outputs": self.outputs,
        }
