"""Ec2Events: one item per change to an instance, however many sources saw it.

An event is identified by tenant, account, region, instance, kind and the minute it happened.
The describer (with EC2's own times: a launch, a start, the time in a stop's or termination's
reason) and CloudTrail (the API call's time) see a launch, start, stop or termination within the
same second, so both write the same item: each write is an update that adds its source to the
set, keeps the first time and each detail first seen (CloudTrail knows a resize's new type, the
describer the old one too), and sets the principal CloudTrail named. A resize carries
no time in DescribeInstances (the describer dates it with its run's hour), so the two sources'
resizes of one instance are joined by looking for the other's within the hour before the run.

The describer records a run's changes together (``record_many``): a first run over a fleet is
an event per instance, most of them new, and a new event needs no update, only a guarded put.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from pynamodb.expressions.update import Action

from kopter import dynamo, times
from kopter.cloudtrail.records import Record
from kopter.settings import Settings
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
    return Ec2Event.sort_key(minute, hashlib.sha256(identity.encode()).hexdigest()[:20])


def save(
    tenant_id: str,
    account_id: str,
    change: Change,
    source: str,
    principal: str | None = None,
    key: str | None = None,
) -> None:
    """Create or join the event of ``change``: ``key`` names an existing event to join. The
    update sets what ``new_event`` would put, but keeps the first time and the details seen
    (adding those it lacks), and adds the source to those that saw it."""
    event = new_event(tenant_id, account_id, change, source, principal)
    actions: list[Action] = []
    for name, attribute in Ec2Event.get_attributes().items():
        value = getattr(event, name)
        if value is None or attribute.is_hash_key or attribute.is_range_key:
            continue
        if name == "sources":
            actions.append(attribute.add(value))
        elif name in ("occurred_at", "detail"):
            actions.append(attribute.set(attribute | value))  # if not set yet
        else:
            actions.append(attribute.set(value))
    item = Ec2Event(tenant_id, key or event.event_key)
    item.update(actions=actions)  # the item as written: its detail is what the first source saw
    if change.detail:
        _join_detail(item, change.detail)


def _join_detail(item: Ec2Event, detail: dict[str, Any]) -> None:
    """Add the keys of ``detail`` the event's lacks, each value first seen kept. A write
    conditioned on the detail read, read again when another source wrote it in between: the
    detail is one JSON value, which no update expression can merge."""
    while (joined := {**detail, **(item.detail or {})}) != item.detail:
        if dynamo.update_if(item, [Ec2Event.detail.set(joined)], Ec2Event.detail == item.detail):
            return
        item.refresh()


def record_many(
    tenant_id: str, account_id: str, changes: list[Change], source: str, settings: Settings
) -> None:
    """Record changes one source saw (without a principal: the describer's), each as ``record``
    would: one BatchGetItem per 100 events finds those that exist, a new one costs one put.

    The other source may write the same event at any moment, so a put is conditioned on the
    event's absence, and an event that exists is joined with ``save``'s update, which keeps the
    other's principal and source. Not BatchWriteItem: its puts replace whole items. Not
    TransactWriteItems: each item costs two writes, and moto deep-copies the table for each item
    of a transaction, which a first run over 20,000 instances would not live through."""
    for change in changes:
        if change.kind == "resized":  # the join looks for the other's resize: one at a time
            record(tenant_id, account_id, change, source)
    wanted: dict[str, Change] = {}
    for change in changes:
        if change.kind != "resized":
            wanted.setdefault(event_key(tenant_id, account_id, change), change)  # first wins
    found = dynamo.batch_get(
        Ec2Event.Meta.table_name,
        [{"tenant_id": {"S": tenant_id}, "event_key": {"S": key}} for key in wanted],
        settings,
        projection=["event_key", "sources"],
    )
    sources = {item["event_key"]["S"]: set(item.get("sources", {}).get("SS", [])) for item in found}
    for key, change in wanted.items():
        if key not in sources:
            if _create(tenant_id, account_id, change, source):
                continue
        elif source in sources[key]:
            continue  # this source recorded it already (a redelivered run): nothing to add
        save(tenant_id, account_id, change, source, key=key)


def new_event(
    tenant_id: str, account_id: str, change: Change, source: str, principal: str | None = None
) -> Ec2Event:
    """The item of a change no source has recorded yet."""
    when = change.occurred_at.astimezone(UTC)
    return Ec2Event(
        tenant_id,
        event_key(tenant_id, account_id, change),
        tenant_account=Ec2Event.account_key(tenant_id, account_id),
        tenant_instance=Ec2Event.instance_key(tenant_id, change.instance_id),
        account_id=account_id,
        region=change.region,
        instance_id=change.instance_id,
        kind=change.kind,
        occurred_at=when,
        expires_at=when + timedelta(days=EVENT_DAYS),
        sources={source},
        detail=change.detail,
        principal_arn=principal or None,
    )


def _create(tenant_id: str, account_id: str, change: Change, source: str) -> bool:
    """Put the event ``save`` would create, unless it exists by now: whether it was put."""
    return dynamo.put_if_absent(new_event(tenant_id, account_id, change, source))


def resize_seen_by(
    source: str, tenant_id: str, instance_id: str, start: datetime, end: datetime
) -> Ec2Event | None:
    """The resize of the instance that ``source`` recorded in [start, end), if any."""
    for event in Ec2Event.by_instance.query(
        Ec2Event.instance_key(tenant_id, instance_id),
        Ec2Event.event_key.between(Ec2Event.time_key(start), Ec2Event.time_key(end)),
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
        detail = {"instance_type": _text(request.get("instanceType"))}
    elif kind == "resized":
        attribute = request.get("instanceType")
        new_type = _text(attribute.get("value")) if isinstance(attribute, dict) else None
        if not new_type:
            return []  # another attribute changed
        ids, detail = [request.get("instanceId")], {"to": new_type}
    else:
        ids = [i.get("instanceId") for i in _items(request.get("instancesSet"))]
    account = record.recipientAccountId or ""
    principal = record.userIdentity.arn if record.userIdentity else None
    try:
        when = times.parse(record.eventTime)
    except ValueError:  # the decoder checks its length only
        return []
    return [
        (account, Change(str(i), record.awsRegion, kind, when, detail), principal)
        for i in ids
        if isinstance(i, str) and i.startswith("i-")
    ]


def _json(raw: msgspec.Raw) -> dict[str, Any]:
    """The object in ``raw``, or {}: the record was decoded without reading it, so it may hold
    what msgspec refuses (a string that is not UTF-8 raises UnicodeDecodeError)."""
    try:
        value = msgspec.json.decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return {}
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str | None:
    """A string of the request, or None: the cost aggregator prices an instance type."""
    return value if isinstance(value, str) else None


def _items(container: Any) -> list[dict[str, Any]]:
    items = container.get("items") if isinstance(container, dict) else None
    return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []
