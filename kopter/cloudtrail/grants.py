"""What a CloudTrail request grants, parsed: networks, ARNs, account ids and IAM policy principals.

The audit's rules compare these as values, never as strings: ``208.236.235.254/0`` is the whole
IPv4 internet, and ``arn:aws:iam::193672423079:root`` names account 193672423079.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import unquote

ANYONE = "*"
_ACCOUNT_ID = re.compile(r"\d{12}")
_INSTANCE_ID = re.compile(r"i-[0-9a-f]{8}(?:[0-9a-f]{9})?", re.IGNORECASE)


@dataclass(frozen=True)
class Arn:
    partition: str
    service: str
    region: str
    account: str  # "" for global resources (S3 buckets), "aws" for AWS-managed policies
    resource: str  # e.g. "assumed-role/my-role/i-0123456789abcdef0"

    @classmethod
    def parse(cls, text: str) -> Arn | None:
        parts = text.split(":", 5)
        if len(parts) != 6 or parts[0] != "arn" or not parts[2]:
            return None
        return cls(*parts[1:])


def account_id(text: str) -> str | None:
    """The account a principal names: a bare account id or an ARN's; ``*`` for anyone."""
    text = text.strip()
    if text == ANYONE or _ACCOUNT_ID.fullmatch(text):
        return text
    arn = Arn.parse(text)
    if arn is not None and _ACCOUNT_ID.fullmatch(arn.account):
        return arn.account
    return None


def is_whole_internet(cidr: Any) -> bool:
    """``0.0.0.0/0``, ``::/0``, and a /0 written with host bits (``208.236.235.254/0``)."""
    if not isinstance(cidr, str):
        return False
    try:
        return ipaddress.ip_network(cidr.strip(), strict=False).prefixlen == 0
    except ValueError:
        return False


@lru_cache(maxsize=4096)  # a day has few principals and many calls
def instance_session(principal_arn: str | None) -> bool:
    """An EC2 instance role's credentials: an assumed-role session named after the instance."""
    arn = Arn.parse(principal_arn or "")
    if arn is None or arn.service != "sts" or not arn.resource.startswith("assumed-role/"):
        return False
    return bool(_INSTANCE_ID.fullmatch(arn.resource.rsplit("/", 1)[-1]))


def user_name(principal_arn: str | None) -> str | None:
    """An IAM user's name from its ARN (``user/path/name``), None for any other principal."""
    arn = Arn.parse(principal_arn or "")
    if arn is None or arn.service != "iam" or not arn.resource.startswith("user/"):
        return None
    return arn.resource.rsplit("/", 1)[-1]


def document(value: Any) -> Any:
    """A policy as CloudTrail records it: an object, or JSON in a string (URL-encoded by IAM
    in some records)."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            try:
                return json.loads(unquote(value))
            except ValueError:
                return None
    return value


def policy_grantees(policy: Any) -> Iterator[str]:
    """The accounts an IAM policy's Allow statements name as principals (``*`` for anyone).
    ``*`` under a condition (an organization, a VPC endpoint, a source account) is not anyone."""
    policy = document(policy)
    if not isinstance(policy, dict):
        return
    statements = policy.get("Statement")
    for statement in statements if isinstance(statements, list) else [statements]:
        if not isinstance(statement, dict) or statement.get("Effect") != "Allow":
            continue
        principal = statement.get("Principal")
        if principal == ANYONE:
            names: list[Any] = [ANYONE]
        elif isinstance(principal, dict):
            aws = principal.get("AWS", [])
            names = aws if isinstance(aws, list) else [aws]
        else:
            continue
        for name in names:
            account = account_id(name) if isinstance(name, str) else None
            if account == ANYONE and statement.get("Condition"):
                continue
            if account:
                yield account


def outside(grantees: Iterable[Any], own: frozenset[str]) -> list[str]:
    """The grantees that are neither the tenant's accounts nor the call's own: anyone (``*``,
    ``all``) or another account. What is not a name (a record of an unknown shape) is none."""
    found = []
    for grantee in grantees:
        if not isinstance(grantee, str):
            continue
        account = "*" if grantee in (ANYONE, "all") else account_id(grantee)
        if account and account not in own:
            found.append(account)
    return found
