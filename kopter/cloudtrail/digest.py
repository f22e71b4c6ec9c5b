"""The daily audit: one UTC day of a tenant's audit log, summed up and checked against rules.

The day is read once, page by page (``query.search`` is lazy): memory holds counters and
findings, never the records. A finding is what one rule of ``RULES`` saw one principal do in one
account that day, with how often and when; the rules are per-record predicates, and a rule with
a threshold reports a principal only once it matched that many records.

The digest is stored under tenant and day (``AuditDigest``), so running a day again overwrites
it. Each finding of severity high or above is one notice, identified by the finding and the day:
a re-run, or a redelivered task, raises none twice.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from kopter.cloudtrail.query import AuditQuery, search
from kopter.errors import Refused
from kopter.notifications import Notice
from kopter.settings import Settings
from kopter.tables import AuditDigest, AuditLogEvent

SEVERITIES = ("low", "medium", "high", "critical")
NOTIFIED = {"high", "critical"}
KEPT = 100  # principals, event sources, findings: what one digest item keeps of a busy day
KEPT_PER_PRINCIPAL = 20  # event names or error codes of one principal
SAMPLE_EVENTS = 5  # event ids a finding keeps, to look the calls up

Predicate = Callable[[AuditLogEvent], bool]


@dataclass(frozen=True)
class Rule:
    name: str
    severity: str  # low, medium, high, critical: high and above notify
    matches: Predicate
    description: str  # one line: a notification's title
    threshold: int = 1  # records of one principal it takes to report them


# --- the rules ------------------------------------------------------------------------------

CLOUDTRAIL, EC2, IAM = "cloudtrail.amazonaws.com", "ec2.amazonaws.com", "iam.amazonaws.com"
RDS = "rds.amazonaws.com"
WORLD = {"0.0.0.0/0", "::/0"}
IAM_CHANGES = {
    "CreateUser", "DeleteUser", "UpdateUser",
    "CreateLoginProfile", "UpdateLoginProfile", "DeleteLoginProfile",
    "CreateAccessKey", "UpdateAccessKey", "DeleteAccessKey",
    "AddUserToGroup", "RemoveUserFromGroup",
    "AttachUserPolicy", "DetachUserPolicy", "PutUserPolicy", "DeleteUserPolicy",
    "AttachGroupPolicy", "DetachGroupPolicy", "PutGroupPolicy", "DeleteGroupPolicy",
    "AttachRolePolicy", "DetachRolePolicy", "PutRolePolicy", "DeleteRolePolicy",
    "UpdateAssumeRolePolicy",
    "CreatePolicy", "DeletePolicy", "CreatePolicyVersion", "DeletePolicyVersion",
    "SetDefaultPolicyVersion",
}  # fmt: skip
DENIED_BURST = 10


def _calls(source: str, *names: str) -> Predicate:
    wanted = frozenset(names)
    return lambda e: e.event_source == source and e.event_name in wanted


def _succeeded(p: Predicate) -> Predicate:
    return lambda e: not e.error_code and p(e)


def _failed(p: Predicate) -> Predicate:
    return lambda e: bool(e.error_code) and p(e)


def _root_use(e: AuditLogEvent) -> bool:
    # Calls a service makes on the root user's behalf (invokedBy, service events) are not use.
    return e.principal_type == "Root" and not e.invoked_by and e.event_type != "AwsServiceEvent"


def _console_login_without_mfa(e: AuditLogEvent) -> bool:
    # IAM users and root only: federated and SSO sign-ins always say "No", their MFA being the
    # identity provider's.
    return (
        e.event_name == "ConsoleLogin"
        and e.principal_type in ("IAMUser", "Root")
        and e.mfa_used == "No"
        and _json(e.response).get("ConsoleLogin") == "Success"
    )


def _opens_to_world(e: AuditLogEvent) -> bool:
    # ipPermissions.items[].ipRanges.items[].cidrIp, ipv6Ranges….cidrIpv6, or the old flat cidrIp
    if e.event_source != EC2 or e.event_name != "AuthorizeSecurityGroupIngress":
        return False
    return any(
        key in ("cidrIp", "cidrIpv6") and value in WORLD for key, value in _leaves(_json(e.request))
    )


def _snapshot_made_public(e: AuditLogEvent) -> bool:
    if e.event_source == EC2 and e.event_name == "ModifySnapshotAttribute":
        # EBS: createVolumePermission {"add": {"items": [{"group": "all"}]}}
        added = _json(e.request).get("createVolumePermission", {}).get("add", {})
        return any(key == "group" and value == "all" for key, value in _leaves(added))
    if e.event_source == RDS and e.event_name in (
        "ModifyDBSnapshotAttribute",
        "ModifyDBClusterSnapshotAttribute",
    ):
        request = _json(e.request)
        return request.get("attributeName") == "restore" and "all" in (
            request.get("valuesToAdd") or []
        )
    return False


def _denied(e: AuditLogEvent) -> bool:
    """AccessDenied, AccessDeniedException, Client.UnauthorizedOperation and the like."""
    code = e.error_code or ""
    return code.startswith("AccessDenied") or "Unauthorized" in code


_stop_trail = _calls(CLOUDTRAIL, "StopLogging", "DeleteTrail")

RULES: tuple[Rule, ...] = (
    # Failed calls too: either way someone holds, or tries, the root credentials.
    Rule("root-account-use", "high", _root_use, "Root user activity"),
    Rule(
        "console-login-without-mfa",
        "high",
        _console_login_without_mfa,
        "Console sign-in without MFA",
    ),
    Rule(
        "iam-change",
        "medium",
        _succeeded(_calls(IAM, *IAM_CHANGES)),
        "IAM users, access keys or policies changed",
    ),
    Rule(
        "security-group-open-to-world",
        "high",
        _succeeded(_opens_to_world),
        "Security group ingress opened to 0.0.0.0/0 or ::/0",
    ),
    Rule(
        "cloudtrail-stopped",
        "critical",
        _succeeded(_stop_trail),
        "CloudTrail logging stopped or a trail deleted",
    ),
    # Denied, it still says someone tried to blind the audit log.
    Rule(
        "cloudtrail-stop-attempt",
        "high",
        _failed(_stop_trail),
        "Attempt to stop CloudTrail or delete a trail (it failed)",
    ),
    Rule(
        "cloudtrail-changed",
        "high",
        _succeeded(_calls(CLOUDTRAIL, "UpdateTrail", "PutEventSelectors", "PutInsightSelectors")),
        "A trail's destination or event selectors changed",
    ),
    Rule(
        "snapshot-shared-publicly",
        "critical",
        _succeeded(_snapshot_made_public),
        "Snapshot shared publicly",
    ),
    # Many denials from one principal: permissions being probed (e.g. Stratus Red Team's
    # ec2-get-password-data), or a broken deployment.
    Rule(
        "denied-calls-burst",
        "medium",
        _denied,
        f"{DENIED_BURST} or more denied calls by one principal",
        threshold=DENIED_BURST,
    ),
)


def _json(text: str | None) -> dict[str, Any]:
    """A stored request or response; {} when absent, or cut to fit the item (``truncated``)."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _leaves(value: Any, key: str = "") -> Iterator[tuple[str, Any]]:
    """Every (key, scalar) in a JSON document, however deep."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _leaves(v, k)
    elif isinstance(value, list):
        for v in value:
            yield from _leaves(v, key)
    else:
        yield key, value


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

    def add(self, e: AuditLogEvent) -> None:
        self.count += 1
        self.first_at = min(self.first_at or e.event_time, e.event_time)
        self.last_at = max(self.last_at, e.event_time)
        self.event_names[e.event_name] += 1
        if len(self.event_ids) < SAMPLE_EVENTS:
            self.event_ids.append(e.event_id)

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule.name,
            "severity": self.rule.severity,
            "description": self.rule.description,
            "account_id": self.account_id,
            "principal": self.principal,
            "count": self.count,
            "first_at": self.first_at,
            "last_at": self.last_at,
            "calls": dict(self.event_names.most_common(KEPT_PER_PRINCIPAL)),
            "event_ids": self.event_ids,
        }


class _Tally:
    """What the digest keeps of the records read so far."""

    def __init__(self) -> None:
        self.records = 0
        self.by_principal: Counter[str] = Counter()
        self.by_source: Counter[str] = Counter()
        self.denied: defaultdict[str, Counter[str]] = defaultdict(Counter)  # → event names
        self.failed: defaultdict[str, Counter[str]] = defaultdict(Counter)  # → error codes
        self.findings: dict[tuple[str, str, str], Finding] = {}

    def add(self, e: AuditLogEvent) -> None:
        principal = _principal(e)
        self.records += 1
        self.by_principal[principal] += 1
        self.by_source[e.event_source] += 1
        if _denied(e):
            self.denied[principal][e.event_name] += 1
        elif e.error_code:
            self.failed[principal][e.error_code] += 1
        for rule in RULES:
            if rule.matches(e):
                key = (rule.name, e.account_id, principal)
                finding = self.findings.get(key) or self.findings.setdefault(
                    key, Finding(rule, e.account_id, principal)
                )
                finding.add(e)

    def reported(self) -> list[Finding]:
        """The findings at their rule's threshold or over: most severe first, then in the
        order of RULES, then the most frequent."""
        found = [f for f in self.findings.values() if f.count >= f.rule.threshold]
        return sorted(
            found,
            key=lambda f: (-SEVERITIES.index(f.rule.severity), RULES.index(f.rule), -f.count),
        )


def _by_principal(counts: dict[str, Counter[str]], what: str) -> list[dict[str, Any]]:
    busiest = sorted(counts.items(), key=lambda pc: -pc[1].total())[:KEPT]
    return [
        {"principal": p, "count": c.total(), what: dict(c.most_common(KEPT_PER_PRINCIPAL))}
        for p, c in busiest
    ]


def day_events(tenant_id: str, day: date) -> Iterator[AuditLogEvent]:
    """The tenant's records of one UTC day, streamed."""
    since = f"{day.isoformat()}T00:00:00Z"
    until = f"{(day + timedelta(days=1)).isoformat()}T00:00:00Z"
    return search(AuditQuery(tenant_id, since=since, until=until))


@dataclass
class DayAudit:
    digest: AuditDigest
    findings: list[Finding]  # all of them: the digest keeps the KEPT most severe

    def notices(self) -> list[Notice]:
        """One per finding of severity high or above."""
        return [self._notice(f) for f in self.findings if f.rule.severity in NOTIFIED]

    def _notice(self, f: Finding) -> Notice:
        day = self.digest.day
        calls = ", ".join(f"{name}: {n}" for name, n in f.event_names.most_common(5))
        return Notice(
            tenant_id=self.digest.tenant_id,
            kind="audit-finding",
            subject=f"{f.rule.name}:{f.account_id}:{f.principal}",
            occurred_at=f"{day}T00:00:00Z",  # the day, not the first call: a re-run's is the same
            severity=f.rule.severity,
            title=f"{f.rule.description} in account {f.account_id}",
            body=(
                f"{f.principal} made {f.count} such call(s) on {day} ({calls}), from "
                f"{f.first_at} to {f.last_at}. The day's audit digest and the audit log have more."
            ),
            links={"account": f.account_id, "day": day, "principal": f.principal},
        )

    def summary(self) -> dict[str, Any]:
        """What the run found, for ``kopter run audit --wait``."""
        by_severity = Counter(f.rule.severity for f in self.findings)
        return {
            "tenant_id": self.digest.tenant_id,
            "day": self.digest.day,
            "records": int(self.digest.records),
            "denied_calls": int(self.digest.denied_calls),
            "failed_calls": int(self.digest.failed_calls),
            "findings": {s: by_severity[s] for s in reversed(SEVERITIES) if by_severity[s]},
            "notified": sum(by_severity[s] for s in NOTIFIED),
        }


def audit_day(tenant_id: str, day: date, settings: Settings) -> DayAudit:
    """Digest one UTC day of the tenant's audit log and store it, overwriting an earlier run of
    the day. The caller raises its notices."""
    tally = _Tally()
    for event in day_events(tenant_id, day):
        tally.add(event)
    findings = tally.reported()
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
        findings_total=len(findings),
        findings=[f.as_dict() for f in findings[:KEPT]],
        computed_at=now,
        expires_at=now + timedelta(days=settings.audit_retention_days),
    )
    digest.save()
    return DayAudit(digest, findings)


def get_digest(tenant_id: str, day: date) -> AuditDigest | None:
    try:
        return AuditDigest.get(tenant_id, day.isoformat())
    except AuditDigest.DoesNotExist:
        return None


def as_dict(digest: AuditDigest) -> dict[str, Any]:
    return {
        "tenant_id": digest.tenant_id,
        "day": digest.day,
        "records": int(digest.records),
        "principals": int(digest.principals),
        "by_principal": digest.by_principal,
        "by_source": digest.by_source,
        "denied_calls": int(digest.denied_calls),
        "denied": digest.denied,
        "failed_calls": int(digest.failed_calls),
        "failed": digest.failed,
        "findings_total": int(digest.findings_total),
        "findings": digest.findings,
        "computed_at": digest.computed_at,
    }
