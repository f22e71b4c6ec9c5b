"""Keeping the raw queue's policy (``kopter.iam.raw_queue``) equal to the registered accounts.

A registration adds its account to the policy as SQS holds it (no read of other tenants'
accounts); a removal and `kopter bootstrap` write it whole from the accounts table, since a
bucket may serve several accounts (an organization trail's). Two registrations at one moment may
each write a policy without the other's account: the next registration, removal or bootstrap
writes it again."""

from __future__ import annotations

import json
from typing import Any

from kopter import accounts, aws, queues
from kopter.iam import raw_queue
from kopter.iam.raw_queue import Admitted
from kopter.queues import Change
from kopter.settings import Settings


def _current(settings: Settings) -> tuple[Any, str, str, dict[str, Any] | None]:
    sqs = aws.client("sqs", settings)
    name = queues.sqs_name(settings, queues.RAW_QUEUES[0])
    url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn", "Policy"])
    current = attributes.get("Attributes", {})
    return sqs, url, current["QueueArn"], json.loads(current.get("Policy") or "null")


def _write(settings: Settings, admitted: Admitted) -> Change:
    sqs, url, arn, present = _current(settings)
    wanted = raw_queue.policy(arn, admitted)
    name = queues.sqs_name(settings, queues.RAW_QUEUES[0])
    if raw_queue.serialize(present) == raw_queue.serialize(wanted):
        return Change("policy", name, "unchanged")
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": raw_queue.serialize(wanted)})
    return Change("policy", name, "updated", f"{len(admitted.accounts)} accounts admitted")


def admit(settings: Settings, account_id: str, bucket: str | None) -> Change:
    """After a registration: the policy as it stands, with this account's bucket and topics."""
    *_, present = _current(settings)
    return _write(settings, Admitted.of(present).adding(account_id, bucket))


def ensure_policy(settings: Settings) -> Change:
    """The policy made from every registered account (bootstrap, and after a removal)."""
    registered = [(a.account_id, a.cloudtrail_bucket) for a in accounts.all_accounts()]
    return _write(settings, Admitted.registered(registered))
