"""The daily audit: one UTC day of a tenant's audit log, summed up and checked against rules.

The day is read once, page by page (``query.search`` is lazy): memory holds counters and
findings, never the records. The audit runs the rules of ``RULES`` that count or compare over
the day (``kopter_rules.windowed``): a rule with a threshold reports a principal only once it
matched that many records (or that many distinct secrets, instances…), and a rule comparing
addresses only once another kind of identity called from one of the same addresses that day.
Their finding is what one rule saw one principal do in one account that day, with how often and
when, and the MITRE ATT&CK technique it shows.

The rules that judge one call alone, kopter's and Sigma's, ran as the records were ingested
(``kopter.detections``): the digest lists the day's findings of those too, read from the
Findings table and summed up the same way (one entry per set of rules, account and principal),
and never judges those records again, so nothing is counted twice.

The digest is stored under tenant and day (``AuditDigest``), so running a day again overwrites
it. Each of its own findings of severity high or above is one notice, identified by the finding
and the day: a re-run, or a redelivered task, raises none twice. The findings of ingest were
notified when they were found.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from kopter import accounts, tables, times
from kopter.cloudtrail.rules import ORDER, RULES, Call, Rule, denied
from kopter.detections.kopter_rules import windowed
from kopter.detections.rules import LEVELS
from kopter.errors import Refused
from kopter.notifications import Notice
from kopter.reads.audit import AuditQuery, query
from kopter.reads.findings import FindingsQuery
from kopter.reads.findings import query as findings_query
from kopter.settings import Settings
from kopter.tables import AuditDigest, AuditLogEvent

NOTIFIED = {"high", "critical"}
WINDOWED = windowed(RULES)  # what the audit itself runs
BY_NAME = {rule.name: rule for rule in RULES}
KEPT = 100  # principals, event sources, findings: what one digest item keeps of a busy day
KEPT_PER_PRINCIPAL = 20  # event names or error codes of one principal
SAMPLE_EVENTS = 5  # event ids a finding keeps, to look the calls up


# --- the day ----------------------------------------------------------------------------------


def parse_day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise Refused(f"{text!r} is not an ISO date like 2026-11-27") from None


def _principal(e: AuditLogEvent) -> str:
    """Who made the call: the ARN, else the service that did (AWSService records have no ARN)."""
    return e.principal_arn or e.invoked_by or e.principal_type or "unknown"


@dataclass
class Finding:
    rule: Rule
    account_id: str
    principal: str
    count: int = 0
    first_at: str = ""
    last_at: str = ""
    event_names: Counter[str] = field(default_factory=Counter)
    event_ids: list[str] = field(default_factory=list)
    keys: set[str] = field(default_factory=set)  # what the threshold counts (up to KEPT)
    addresses: set[str] = field(default_factory=set)  # for a rule that compares them

    def add(self, call: Call, e: AuditLogEvent) -> None:
        rule, at = self.rule, e.event_time
        self.count += 1
        self.first_at = min(self.first_at or at, at)
        self.last_at = max(self.last_at, at)
        self.event_names[e.event_name] += 1
        if len(self.event_ids) < SAMPLE_EVENTS:
            self.event_ids.append(e.event_id)
        if rule.keys is not None and len(self.keys) < KEPT:
            self.keys.update(rule.keys(call))
        if rule.same_address_as is not None and e.source_ip and len(self.addresses) < KEPT:
            self.addresses.add(e.source_ip)

    def reached(self, shared_addresses: set[str]) -> bool:
        rule = self.rule
        seen = len(self.keys) if rule.keys is not None else self.count
        if rule.same_address_as is not None:
            self.addresses &= shared_addresses
            return seen >= rule.threshold and bool(self.addresses)
        return seen >= rule.threshold

    def why(self) -> str:
        detail = f"{self.count} call(s)"
        if self.rule.keys is not None:
            detail += f", {len(self.keys)}{'+' if len(self.keys) >= KEPT else ''} distinct"
        if self.addresses:
            detail += f", from {', '.join(sorted(self.addresses)[:SAMPLE_EVENTS])}"
        return f"{self.rule.description} ({detail})"

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule.name,
            "rules": [_kopter_rule(self.rule)],
            "severity": self.rule.severity,
            "technique": self.rule.technique.as_dict(),
            "description": self.rule.description,
            "why": self.why(),
            "account_id": self.account_id,
            "principal": self.principal,
            "count": self.count,
            "first_at": self.first_at,
            "last_at": self.last_at,
            "calls": dict(self.event_names.most_common(KEPT_PER_PRINCIPAL)),
            "event_ids": self.event_ids,
            "found": "audit",
        }


def _kopter_rule(rule: Rule) -> dict[str, str]:
    """A rule of kopter's as a finding names it (as ``findings.rule_ref`` names any rule)."""
    return {
        "id": rule.name,
        "title": rule.description,
        "source": "kopter",
        "author": "kopter",
        "level": rule.severity,
    }


class _Tally:
    """What the digest keeps of the records read so far."""

    def __init__(self, own_accounts: frozenset[str], rules: tuple[Rule, ...]) -> None:
        self.own_accounts = own_accounts
        self.records = 0
        self.by_principal: Counter[str] = Counter()
        self.by_source: Counter[str] = Counter()
        self.denied: defaultdict[str, Counter[str]] = defaultdict(Counter)  # → event names
        self.failed: defaultdict[str, Counter[str]] = defaultdict(Counter)  # → error codes
        self.findings: dict[tuple[str, str, str], Finding] = {}
        # The rules by the calls they look at: a record meets only its own and the catch-alls.
        self.by_call: defaultdict[tuple[str, str], list[Rule]] = defaultdict(list)
        self.every_call = [rule for rule in rules if not rule.calls]
        for rule in rules:
            for call in rule.calls:
                self.by_call[call].append(rule)
        self.comparing = [rule for rule in rules if rule.same_address_as is not None]
        self.addresses: defaultdict[str, set[str]] = defaultdict(set)  # rule → addresses

    def add(self, e: AuditLogEvent) -> None:
        call = Call(e, self.own_accounts)
        principal, source, error = _principal(e), call.source, call.error
        self.records += 1
        self.by_principal[principal] += 1
        self.by_source[source] += 1
        if denied(error):
            self.denied[principal][e.event_name] += 1
        elif error:
            self.failed[principal][error] += 1
        if self.comparing and (address := e.source_ip):
            for rule in self.comparing:
                if rule.same_address_as and rule.same_address_as(call):
                    self.addresses[rule.name].add(address)
        for rules in (self.by_call.get((source, call.name)), self.every_call):
            for rule in rules or ():
                if rule.matches(call):
                    key = (rule.name, e.account_id, principal)
                    finding = self.findings.get(key) or self.findings.setdefault(
                        key, Finding(rule, key[1], principal)
                    )
                    finding.add(call, e)

    def reported(self) -> list[Finding]:
        """The findings at their rule's threshold or over."""
        return [f for f in self.findings.values() if f.reached(self.addresses[f.rule.name])]


def _by_principal(counts: dict[str, Counter[str]], what: str) -> list[dict[str, Any]]:
    busiest = sorted(counts.items(), key=lambda pc: -pc[1].total())[:KEPT]
    return [
        {"principal": p, "count": c.total(), what: dict(c.most_common(KEPT_PER_PRINCIPAL))}
        for p, c in busiest
    ]


class _Ingested:
    """The day's findings of ingest, summed up as the audit's own: one entry per set of rules,
    account and principal."""

    def __init__(self) -> None:
        self.entries: dict[tuple[Any, ...], dict[str, Any]] = {}
        self.calls: defaultdict[tuple[Any, ...], Counter[str]] = defaultdict(Counter)

    def add(self, f: tables.Finding) -> None:
        rules: list[dict[str, str]] = f.rules
        key = (tuple(r["id"] for r in rules), f.account_id, f.principal)
        entry = self.entries.get(key)
        if entry is None:
            entry = self.entries[key] = _ingested_entry(f)
        entry["count"] += 1
        entry["first_at"] = min(entry["first_at"], f.event_time)
        entry["last_at"] = max(entry["last_at"], f.event_time)
        self.calls[key][f.event_name] += 1
        if len(entry["event_ids"]) < SAMPLE_EVENTS:
            entry["event_ids"].append(f.event_id)

    def listed(self) -> list[dict[str, Any]]:
        for key, entry in self.entries.items():
            entry["calls"] = dict(self.calls[key].most_common(KEPT_PER_PRINCIPAL))
            entry["why"] = f"{entry['description']} ({entry['count']} call(s), found at ingest)"
        return list(self.entries.values())


def _ingested_entry(f: tables.Finding) -> dict[str, Any]:
    rules: list[dict[str, str]] = f.rules
    own = [BY_NAME[r["id"]] for r in rules if r["source"] == "kopter" and r["id"] in BY_NAME]
    return {
        "rule": rules[0]["id"],
        "rules": rules,
        "severity": f.level,
        "technique": own[0].technique.as_dict() if own else None,
        "description": rules[0]["title"],
        "account_id": f.account_id,
        "principal": f.principal,
        "count": 0,
        "first_at": f.event_time,
        "last_at": f.event_time,
        "event_ids": [],
        "found": "ingest",
    }


def _listing_order(entry: dict[str, Any]) -> tuple[int, int, int]:
    """Most severe first, then kopter's rules in the order of RULES, then the most frequent."""
    order = min((ORDER.get(r["id"], len(ORDER)) for r in entry["rules"]), default=len(ORDER))
    return (-LEVELS.index(entry["severity"]), order, -entry["count"])


def day_findings(tenant_id: str, day: date) -> list[dict[str, Any]]:
    """The day's findings of ingest, read from the Findings table and summed up."""
    since, until = times.day_start(day), times.day_start(day + timedelta(days=1))
    ingested = _Ingested()
    for f in findings_query(FindingsQuery(tenant_id, since=since, until=until, oldest_first=True)):
        ingested.add(f)
    return ingested.listed()


def day_events(tenant_id: str, day: date) -> Iterator[AuditLogEvent]:
    """The tenant's records of one UTC day, streamed."""
    since, until = times.day_start(day), times.day_start(day + timedelta(days=1))
    return query(AuditQuery(tenant_id, since=since, until=until))


@dataclass
class DayAudit:
    digest: AuditDigest
    findings: list[Finding]  # the audit's own, at their rule's threshold
    listed: list[dict[str, Any]]  # every finding of the day, most severe first

    def notices(self) -> list[Notice]:
        """One per finding of the audit's own of severity high or above (ingest notified its
        own findings as it found them)."""
        return [self._notice(f) for f in self.findings if f.rule.severity in NOTIFIED]

    def _notice(self, f: Finding) -> Notice:
        day = self.digest.day
        calls = ", ".join(f"{name}: {n}" for name, n in f.event_names.most_common(5))
        technique = f"{f.rule.technique.id} {f.rule.technique.name}"
        return Notice(
            tenant_id=self.digest.tenant_id,
            kind="audit-finding",
            subject=f"{f.rule.name}:{f.account_id}:{f.principal}",
            occurred_at=times.from_iso(day),  # the day, not the first call: a re-run's is the same
            severity=f.rule.severity,
            title=f"{f.rule.description} in account {f.account_id}: {technique}",
            body=(
                f"{f.principal} made {f.count} such call(s) on {day} ({calls}), from "
                f"{f.first_at} to {f.last_at}. {f.why()}; MITRE ATT&CK {technique} "
                f"({f.rule.technique.tactic}). The day's audit digest and the audit log have more."
            ),
            links={"account": f.account_id, "day": day, "principal": f.principal},
        )

    def summary(self) -> dict[str, Any]:
        """What the run found, for ``kopter run audit --wait``: every finding of the day by
        severity, and how many notices the audit raised itself."""
        by_severity = Counter(entry["severity"] for entry in self.listed)
        return {
            "tenant_id": self.digest.tenant_id,
            "day": self.digest.day,
            "records": int(self.digest.records),
            "denied_calls": int(self.digest.denied_calls),
            "failed_calls": int(self.digest.failed_calls),
            "findings": {s: by_severity[s] for s in reversed(LEVELS) if by_severity[s]},
            "notified": len(self.notices()),
        }


def audit_day(tenant_id: str, day: date, settings: Settings) -> DayAudit:
    """Digest one UTC day of the tenant's audit log and store it, overwriting an earlier run of
    the day. The caller raises its notices."""
    return audit_events(tenant_id, day, day_events(tenant_id, day), settings)


def audit_events(
    tenant_id: str,
    day: date,
    events: Iterable[AuditLogEvent],
    settings: Settings,
    rules: tuple[Rule, ...] = WINDOWED,
) -> DayAudit:
    """``audit_day`` over records already read (`make bench`: the audit's own cost, apart from
    the reads, with its rules beside all of kopter's)."""
    own = frozenset(a.account_id for a in accounts.list_accounts(tenant_id))
    tally = _Tally(own, rules)
    for event in events:
        tally.add(event)
    findings = tally.reported()
    listed = sorted(
        [f.as_dict() for f in findings] + day_findings(tenant_id, day), key=_listing_order
    )
    now = datetime.now(UTC)
    digest = AuditDigest(
        tenant_id,
        day.isoformat(),
        records=tally.records,
        principals=len(tally.by_principal),
        by_principal=dict(tally.by_principal.most_common(KEPT)),
        by_source=dict(tally.by_source.most_common(KEPT)),
        denied_calls=sum(c.total() for c in tally.denied.values()),
        denied=_by_principal(tally.denied, "calls"),
        failed_calls=sum(c.total() for c in tally.failed.values()),
        failed=_by_principal(tally.failed, "errors"),
        findings_total=len(listed),
        findings=listed[:KEPT],
        computed_at=now,
        expires_at=now + timedelta(days=settings.audit_retention_days),
    )
    digest.save()
    return DayAudit(digest, findings, listed)
