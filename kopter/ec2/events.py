"""Ec2Events: one item per change to an instance, however many sources saw it.

An event is identified by tenant, account, region, instance, kind and the minute it happened.
The describer (with EC2's own times: a launch, a start, the time in a stop's or termination's
reason) and CloudTrail (the API call's time) see a launch, start, stop or termination within the
same second, so both write the same item: each write is an update that adds its source to the
set, keeps the first time and detail, and sets the principal CloudTrail named. A resize carries
no time in DescribeInstances (the describer dates it with its run's hour), so the two sources'
resizes of one instance are joined by looking for the other's within the hour before the run.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from pynamodb.expressions.update import Action

from kopter.cloudtrail.records import Record
from kopter.tables import Ec2Event

EVENT_DAYS = 400
RESIZE_WINDOW = timedelta(hours=1)
DESCRIBER, CLOUDTRAIL = "describer", "cloudtrail"
# CloudTrail calls that change an instance, and the change each means.
CALLS = {
    "RunInstances": "launched",
    "StartInstances": "started",
    "StopInstances": "stopped",
    "TerminateInstances": "terminated",
    "ModifyInstanceAttribute": "resized",
}


@dataclass(frozen=True)
class Change:
    instance_id: str
    region: str
    kind: str  # launched, started, stopped, terminated, resized, retagged
    occurred_at: datetime
    detail: dict[str, Any] | None = None


def event_key(tenant_id: str, account_id: str, change: Change) -> str:
    minute = change.occurred_at.astimezone(UTC).replace(second=0, microsecond=0)
    identity = "\0".join(
        (tenant_id, account_id, change.region, change.instance_id, change.kind, minute.isoformat())
    )
    return f"{minute:%Y-%m-%dT%H:%M}Z#{hashlib.sha256(identity.encode()).hexdigest()[:20]}"


def save(
    tenant_id: str,
    account_id: str,
    change: Change,
    source: str,
    principal: str | None = None,
    key: str | None = None,
) -> None:
    """Create or join the event of ``change``: ``key`` names an existing event to join."""
    when = change.occurred_at.astimezone(UTC)
    actions: list[Action] = [
        Ec2Event.tenant_account.set(f"{tenant_id}#{account_id}"),
        Ec2Event.tenant_instance.set(f"{tenant_id}#{change.instance_id}"),
        Ec2Event.account_id.set(account_id),
        Ec2Event.region.set(change.region),
        Ec2Event.instance_id.set(change.instance_id),
        Ec2Event.kind.set(change.kind),
        Ec2Event.occurred_at.set(Ec2Event.occurred_at | when),
        Ec2Event.expires_at.set(when + timedelta(days=EVENT_DAYS)),
        Ec2Event.sources.add({source}),
    ]
    if change.detail is not None:
        actions.append(Ec2Event.detail.set(Ec2Event.detail | change.detail))
    if principal:
        actions.append(Ec2Event.principal_arn.set(principal))
    Ec2Event(tenant_id, key or event_key(tenant_id, account_id, change)).update(actions=actions)


def resize_seen_by(
    source: str, tenant_id: str, instance_id: str, start: datetime, end: datetime
) -> Ec2Event | None:
    """The resize of the instance that ``source`` recorded in [start, end), if any."""
    for event in Ec2Event.by_instance.query(
        f"{tenant_id}#{instance_id}",
        Ec2Event.event_key.between(f"{start:%Y-%m-%dT%H:%M}Z", f"{end:%Y-%m-%dT%H:%M}Z"),
        filter_condition=(Ec2Event.kind == "resized") & Ec2Event.sources.contains(source),
    ):
        return event
    return None


def record(
    tenant_id: str, account_id: str, change: Change, source: str, principal: str | None = None
) -> None:
    """Record a change one source saw. A resize is joined to the other source's if it saw one:
    the describer looks back from its run, CloudTrail forward from the call."""
    if change.kind != "resized":
        save(tenant_id, account_id, change, source, principal)
        return
    if source == DESCRIBER:
        other = resize_seen_by(
            CLOUDTRAIL,
            tenant_id,
            change.instance_id,
            change.occurred_at - RESIZE_WINDOW,
            change.occurred_at + timedelta(minutes=1),
        )
    else:
        other = resize_seen_by(
            DESCRIBER,
            tenant_id,
            change.instance_id,
            change.occurred_at,
            change.occurred_at + RESIZE_WINDOW + timedelta(minutes=1),
        )
    save(tenant_id, account_id, change, source, principal, other.event_key if other else None)


def from_cloudtrail(record: Record) -> list[tuple[str, Change, str | None]]:
    """(account, change, principal) for each instance a successful CloudTrail call changed."""
    kind = CALLS.get(record.eventName)
    if kind is None or record.errorCode or record.eventSource != "ec2.amazonaws.com":
        return []
    request = _json(record.requestParameters)
    response = _json(record.responseElements)
    detail: dict[str, Any] | None = None
    if kind == "launched":
        ids = [i.get("instanceId") for i in _items(response.get("instancesSet"))]
        detail = {"instance_type": request.get("instanceType")}
    elif kind == "resized":
        new_type = (request.get("instanceType") or {}).get("value")
        if not new_type:
            return []  # another attribute changed
        ids, detail = [request.get("instanceId")], {"to": new_type}
    else:
        ids = [i.get("instanceId") for i in _items(request.get("instancesSet"))]
    account = record.recipientAccountId or ""
    principal = record.userIdentity.arn if record.userIdentity else None
    when = datetime.strptime(record.eventTime, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    return [
        (account, Change(str(i), record.awsRegion, kind, when, detail), principal)
        for i in ids
        if isinstance(i, str) and i.startswith("i-")
    ]


def _json(raw: msgspec.Raw) -> dict[str, Any]:
    value = msgspec.json.decode(raw)
    return value if isinstance(value, dict) else {}


def _items(container: Any) -> list[dict[str, Any]]:
    items = container.get("items") if isinstance(container, dict) else None
    return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []
