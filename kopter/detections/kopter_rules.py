"""kopter's own rules that judge one call, as ``DetectionRule``s beside Sigma's.

The daily audit's rules (``kopter.cloudtrail.rules``) that need no more than the call itself
(no count over the day, no comparison with other calls) run at ingest: each is wrapped here so
that ``matches`` takes the raw record. Those that count (10 denied calls by one principal, 10
secrets read, an instance's credentials used from a person's address) stay in the daily audit.

Some rules ask whether an account is the tenant's ("another account" is one it did not
register), so the wrapped rules are made for a tenant's registered accounts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from kopter.cloudtrail.rules import LAMBDA, RULES, Call, Rule
from kopter.detections.rules import DetectionRule

AUTHOR = "kopter"


def single_record(rule: Rule) -> bool:
    """Whether the rule is decided by one call alone."""
    return rule.threshold == 1 and rule.keys is None and rule.same_address_as is None


def windowed(rules: Iterable[Rule] = RULES) -> tuple[Rule, ...]:
    """The rules that stay in the daily audit: they count, or compare, over a day."""
    return tuple(rule for rule in rules if not single_record(rule))


SINGLE_RECORD = tuple(rule for rule in RULES if single_record(rule))
IDS = frozenset(rule.name for rule in SINGLE_RECORD)


def detection_rules(registered: frozenset[str]) -> tuple[DetectionRule, ...]:
    """Each single-record rule of kopter's, for a tenant with these registered accounts."""
    return tuple(_wrapped(rule, registered) for rule in SINGLE_RECORD)


def _wrapped(rule: Rule, registered: frozenset[str]) -> DetectionRule:
    names = {name for _, name in rule.calls}
    sources = {source for source, _ in rule.calls}
    technique = rule.technique
    calls = rule.calls

    def predicate(record: Mapping[str, Any]) -> bool:
        call = Call.of_record(record, registered)
        return (not calls or (call.source, call.name) in calls) and rule.matches(call)

    return DetectionRule(
        id=rule.name,
        title=rule.description,
        source="kopter",
        author=AUTHOR,
        level=rule.severity,  # low, medium, high, critical: Sigma's names too
        description=(
            f"{rule.description}. MITRE ATT&CK {technique.id} {technique.name} "
            f"({technique.tactic})."
        ),
        references=(f"https://attack.mitre.org/techniques/{technique.id.replace('.', '/')}/",),
        tags=(
            f"attack.{technique.tactic.lower().replace(' ', '-')}",
            f"attack.{technique.id.lower()}",
        ),
        predicate=predicate,
        # Lambda's event names carry an API version (UpdateFunctionCode20150331v2): its rules
        # are indexed by event source instead.
        event_names=frozenset(names) if calls and LAMBDA not in sources else None,
        event_sources=frozenset(sources) if calls else None,
    )
