"""The raw queue's policy: which customers' buckets and topics may notify kopter.

S3 and SNS send as their service principals, so the policy names what they send for:
``aws:SourceArn`` (the registered bucket, or a topic of the registered account) and
``aws:SourceAccount``. SQS caps a queue policy at 8,192 bytes; when the precise form (every
bucket ARN and every account's topics) would not fit, the policy admits the registered accounts
by ``aws:SourceAccount`` alone (about 520 accounts), and past that it
cannot be written at all: ingest then needs notifications fanned in through a topic of kopter's.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from kopter.errors import Refused

SQS_POLICY_MAX_BYTES = 8192
SERVICES = ("s3.amazonaws.com", "sns.amazonaws.com")


def _send(
    sid: str, queue_arn: str, services: list[str], condition: dict[str, Any]
) -> dict[str, Any]:
    return {
        "Sid": sid,
        "Effect": "Allow",
        "Principal": {"Service": services if len(services) > 1 else services[0]},
        "Action": "sqs:SendMessage",
        "Resource": queue_arn,
        "Condition": condition,
    }


@dataclass(frozen=True)
class Admitted:
    """What the policy admits: accounts (their topics), and buckets with their owners."""

    accounts: frozenset[str] = frozenset()
    buckets: frozenset[str] = frozenset()
    bucket_accounts: frozenset[str] = frozenset()

    @classmethod
    def registered(cls, pairs: Iterable[tuple[str, str | None]]) -> Admitted:
        """From (account id, CloudTrail bucket or None) pairs."""
        pairs = list(pairs)
        return cls(
            frozenset(a for a, _ in pairs),
            frozenset(b for _, b in pairs if b),
            frozenset(a for a, b in pairs if b),
        )

    def adding(self, account_id: str, bucket: str | None) -> Admitted:
        return Admitted(
            self.accounts | {account_id},
            self.buckets | ({bucket} if bucket else set()),
            self.bucket_accounts | ({account_id} if bucket else set()),
        )

    @classmethod
    def of(cls, document: dict[str, Any] | None) -> Admitted:
        """What a policy this module wrote admits (the compact form keeps no bucket)."""
        accounts: set[str] = set()
        buckets: set[str] = set()
        bucket_accounts: set[str] = set()
        for statement in (document or {}).get("Statement", []):
            condition = statement.get("Condition", {})
            sources = condition.get("ArnLike", {}).get("aws:SourceArn", [])
            owners = condition.get("StringEquals", {}).get("aws:SourceAccount", [])
            if statement.get("Sid") == "RegisteredBuckets":
                buckets |= {arn.split(":::", 1)[1] for arn in sources}
                bucket_accounts |= set(owners)
            elif statement.get("Sid") == "RegisteredTopics":
                accounts |= {arn.split(":")[4] for arn in sources}
            elif statement.get("Sid") == "RegisteredAccounts":
                accounts |= set(owners)
        return cls(
            frozenset(accounts | bucket_accounts), frozenset(buckets), frozenset(bucket_accounts)
        )


def policy(queue_arn: str, admitted: Admitted) -> dict[str, Any] | None:
    """The policy admitting ``admitted``; None when it admits no account (the queue then takes
    no notification)."""
    if not admitted.accounts:
        return None
    partition = queue_arn.split(":")[1]
    accounts = sorted(admitted.accounts)
    statements = []
    if admitted.buckets:
        statements.append(
            _send(
                "RegisteredBuckets",
                queue_arn,
                ["s3.amazonaws.com"],
                {
                    "ArnLike": {
                        "aws:SourceArn": [
                            f"arn:{partition}:s3:::{b}" for b in sorted(admitted.buckets)
                        ]
                    },
                    "StringEquals": {"aws:SourceAccount": sorted(admitted.bucket_accounts)},
                },
            )
        )
    topics = [f"arn:{partition}:sns:*:{a}:*" for a in accounts]
    statements.append(
        _send(
            "RegisteredTopics",
            queue_arn,
            ["sns.amazonaws.com"],
            {"ArnLike": {"aws:SourceArn": topics}},
        )
    )
    precise = _document(statements)
    if fits(precise):
        return precise
    compact = _document(
        [
            _send(
                "RegisteredAccounts",
                queue_arn,
                list(SERVICES),
                {"StringEquals": {"aws:SourceAccount": accounts}},
            )
        ]
    )
    if not fits(compact):
        raise Refused(
            f"the raw queue's policy for {len(accounts)} accounts would exceed SQS's "
            f"{SQS_POLICY_MAX_BYTES} bytes: notifications must reach kopter through a topic"
        )
    return compact


def _document(statements: list[dict[str, Any]]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Id": "kopter-raw-queue", "Statement": statements}


def serialize(document: dict[str, Any] | None) -> str:
    return json.dumps(document, separators=(",", ":"), sort_keys=True) if document else ""


def fits(document: dict[str, Any]) -> bool:
    return len(serialize(document).encode()) <= SQS_POLICY_MAX_BYTES
