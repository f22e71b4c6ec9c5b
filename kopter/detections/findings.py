"""Findings: the records that a tenant's rules match as they are ingested, each stored once and
notified at once.

Every path that writes records (a worker's ingest, `kopter ingest`, a backfill, an export) goes
through ``kopter.cloudtrail.ingest.write``, which judges each record against the tenant's rules
that are on (``tenant_rules.active``) and hands the matches here. A finding is one record with
every rule that matched it (kopter's and SigmaHQ's catching the same call are one finding that
names both), keyed by the tenant and the record's own key: a file delivered twice, or a record
ingested by two paths, finds the same key, and adds nothing.

Each new finding raises a ``finding`` notice through the caller's ``notify`` (the domain knows
no task queue), before it is stored: a worker killed between the two runs the file again, sees
no finding, and raises the notice again, which is stored once (its identity is the record's).
A finding already stored is not notified again. So a notice is never lost, and never doubled.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from typing_extensions import TypedDict  # pydantic reads TypedDicts from here before 3.12

from kopter import dynamo
from kopter.cloudtrail import records
from kopter.detections.rules import LEVELS, DetectionRule, RuleSet
from kopter.notifications import Notice, severity_named
from kopter.settings import Settings
from kopter.tables import AuditLogEvent, Finding

KIND = "finding"
_RANK = {level: i for i, level in enumerate(LEVELS)}

Notify = Callable[[Notice], None]


@dataclass(frozen=True)
class Match:
    key: str  # the record's event key, as its audit-log item's
    record: records.Record
    rules: list[DetectionRule]  # most severe first


def judge(decoded: records.Decoded, rules: RuleSet) -> list[Match]:
    """The records of ``decoded`` that ``rules`` match, each once."""
    if not len(rules):
        return []
    found: dict[str, Match] = {}
    for record, raw in zip(decoded.records, decoded.objects(), strict=True):
        matched = rules.matching(raw) if raw is not None else None
        if matched:
            key = AuditLogEvent.sort_key(record.eventTime, record.eventID)
            ranked = sorted(matched, key=lambda rule: -_RANK[rule.level])
            found.setdefault(key, Match(key, record, ranked))
    return list(found.values())


def store(
    tenant_id: str, matches: list[Match], source: str, settings: Settings, notify: Notify
) -> int:
    """Notify and store each finding not stored yet; how many were new."""
    if not matches:
        return 0
    keys = [{"tenant_id": {"S": tenant_id}, "event_key": {"S": m.key}} for m in matches]
    stored = {
        item["event_key"]["S"]
        for item in dynamo.batch_get(Finding.Meta.table_name, keys, settings, ["event_key"])
    }
    now = datetime.now(UTC)
    expires = now + timedelta(days=settings.audit_retention_days)
    new = 0
    for match in matches:
        if match.key in stored:
            continue
        finding = _finding(tenant_id, match, source, now, expires)
        notify(notice(finding))
        new += dynamo.put_if_absent(finding)
    return new


class RuleRef(TypedDict):
    id: str
    title: str
    source: str  # kopter, sigma, tenant
    author: str
    level: str  # informational, low, medium, high, critical


def rule_ref(rule: DetectionRule) -> RuleRef:
    """What a finding keeps of a rule (its author too: the Detection Rule License asks it)."""
    return {
        "id": rule.id,
        "title": rule.title,
        "source": rule.source,
        "author": rule.author,
        "level": rule.level,
    }


def principal_of(record: records.Record) -> str:
    """Who made the call: the ARN, else the service that did, else the identity's type."""
    identity = record.userIdentity
    if identity is None:
        return "unknown"
    return identity.arn or identity.invokedBy or identity.type or "unknown"


def _finding(
    tenant_id: str, match: Match, source: str, now: datetime, expires: datetime
) -> Finding:
    r = match.record
    return Finding(
        tenant_id,
        match.key,
        event_time=r.eventTime,
        event_id=r.eventID,
        event_source=r.eventSource,
        event_name=r.eventName,
        account_id=records.account_of(r),
        region=r.awsRegion,
        principal=principal_of(r),
        source_ip=r.sourceIPAddress,
        error_code=r.errorCode,
        level=match.rules[0].level,
        rules=[rule_ref(rule) for rule in match.rules],
        source_object=source,
        created_at=now,
        expires_at=expires,
    )


def notice(f: Finding) -> Notice:
    """The ``finding`` notice of a stored (or about to be stored) finding."""
    rules: list[dict[str, Any]] = f.rules
    first = rules[0]
    more = f" and {len(rules) - 1} more rule(s)" if len(rules) > 1 else ""
    failed = f", which failed with {f.error_code}" if f.error_code else ""
    address = f" from {f.source_ip}" if f.source_ip else ""
    return Notice(
        tenant_id=f.tenant_id,
        kind=KIND,
        subject=f"{f.account_id}:{f.event_id}",
        occurred_at=f.event_time,
        severity=severity_named(f.level),
        title=f"{first['title']} in account {f.account_id}{more}",
        body=(
            f"{f.principal} called {f.event_name} ({f.event_source}) in {f.region} at "
            f"{f.event_time}{address}{failed}. Matched: {_named(rules)}."
        ),
        links={"account": f.account_id, "event_id": f.event_id, "event_time": f.event_time},
        detail={
            "rules": rules,
            "event_id": f.event_id,
            "event_name": f.event_name,
            "event_source": f.event_source,
            "event_time": f.event_time,
            "account_id": f.account_id,
            "region": f.region,
            "principal": f.principal,
            "source_ip": f.source_ip,
            "error_code": f.error_code,
        },
    )


def _named(rules: Iterable[dict[str, Any]]) -> str:
    return "; ".join(
        f"{r['title']} ({r['source']} rule {r['id']}, level {r['level']}, by "
        f"{r['author'] or 'unknown'})"
        for r in rules
    )
