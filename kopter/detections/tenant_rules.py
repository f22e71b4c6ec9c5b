"""A tenant's detection rules: kopter's own, SigmaHQ's and the tenant's, each on or off for it.

Every tenant runs kopter's single-record rules and SigmaHQ's CloudTrail rules, on unless
``DEFAULT_OFF`` says why not, and the Sigma rules it added itself. A tenant's choices are items
of the DetectionRules table (``TenantRule``): its own rule with its YAML, or a bundled rule
turned on or off; a rule it never touched has no item and its default state.

A tenant's rule is untrusted input: ``load_rule`` refuses it (one line, nothing stored) when it
is too big, too many comparisons, a form kopter does not evaluate, or a regular expression RE2
cannot run. Its id must be its own: not one of kopter's or SigmaHQ's.

Ingest reads a tenant's rule set through ``active``, which each process keeps for
``KOPTER_RULES_CACHE_SECONDS``: a change applies to records ingested at most that long after.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Iterable
from datetime import UTC, datetime

from kopter import accounts, dynamo
from kopter.detections import kopter_rules
from kopter.detections.rules import DetectionRule, RuleSet
from kopter.detections.sigma import bundled_rules, load_rule
from kopter.errors import Refused
from kopter.settings import Settings
from kopter.tables import TenantRule

log = logging.getLogger(__name__)

# Bundled rules that are off until a tenant turns them on, and why.
DEFAULT_OFF = {
    # AWS STS AssumeRole Misuse (SigmaHQ, level low): every call made with a role's session,
    # about a quarter of real traffic. On by default it would be a finding, and a notification,
    # for most of an account's calls, burying the rest.
    "905d389b-b853-46d0-9d3d-dea0d3a3cd49": "matches every call made with a role's session",
}
TENANT = "tenant"


def bundled(registered: frozenset[str]) -> tuple[DetectionRule, ...]:
    """kopter's single-record rules (for a tenant with these accounts), then SigmaHQ's."""
    return (*kopter_rules.detection_rules(registered), *bundled_rules())


def bundled_ids() -> dict[str, str]:
    """Each bundled rule's id and its source."""
    return {
        **dict.fromkeys(kopter_rules.IDS, "kopter"),
        **{rule.id: rule.source for rule in bundled_rules()},
    }


def default_enabled(rule: DetectionRule) -> bool:
    return rule.source == TENANT or rule.id not in DEFAULT_OFF


def catalogue(tenant_id: str) -> list[tuple[DetectionRule, bool]]:
    """Every rule of the tenant, with whether it is on: kopter's, SigmaHQ's, then its own."""
    registered = _registered(tenant_id)
    choices = {item.rule_id: item for item in TenantRule.query(tenant_id, consistent_read=True)}
    rules: list[tuple[DetectionRule, bool]] = []
    for rule in bundled(registered):
        choice = choices.get(rule.id)
        rules.append((rule, choice.enabled if choice is not None else default_enabled(rule)))
    for item in _own(choices.values()):
        own = _loaded(item)
        if own is not None:
            rules.append((own, item.enabled))
    return rules


def add(tenant_id: str, text: str) -> DetectionRule:
    """Store the tenant's Sigma rule, on; one of the same id is replaced. Refused, with nothing
    stored, when kopter would not run it."""
    rule = load_rule(text, TENANT)
    taken = bundled_ids().get(rule.id)
    if taken is not None:
        raise Refused(
            f"Sigma rule {rule.id}: that id is {_whose(taken)}'s rule: give yours an id of its "
            "own (a new UUID)"
        )
    TenantRule(
        tenant_id, rule.id, source=TENANT, enabled=True, text=text, updated_at=datetime.now(UTC)
    ).save()
    return rule


def set_enabled(tenant_id: str, rule_id: str, enabled: bool) -> DetectionRule:
    """Turn one of the tenant's rules on or off: its own, or a bundled one for it alone."""
    found = [rule for rule, _ in catalogue(tenant_id) if rule.id == rule_id]
    if not found:
        raise Refused(f"no rule {rule_id[:80]!r}: `kopter rules list --tenant T` lists the ids")
    rule, now = found[0], datetime.now(UTC)
    item = TenantRule(tenant_id, rule_id, source=rule.source, enabled=enabled, updated_at=now)
    if rule.source != TENANT:
        item.save()
        return rule
    # The tenant's own keeps its text; conditioned, so that no item without one is made.
    changes = [TenantRule.enabled.set(enabled), TenantRule.updated_at.set(now)]
    if not dynamo.update_if(item, changes, TenantRule.text.exists()):
        raise Refused(f"no rule {rule_id[:80]!r}: `kopter rules list --tenant T` lists the ids")
    return rule


def _whose(source: str) -> str:
    return "SigmaHQ" if source == "sigma" else source


def _own(items: Iterable[TenantRule]) -> list[TenantRule]:
    return sorted((i for i in items if i.source == TENANT), key=lambda i: i.rule_id)


def _loaded(item: TenantRule) -> DetectionRule | None:
    """A stored rule of the tenant's, or None (logged) if kopter no longer runs it."""
    try:
        return _parsed(item.text or "")
    except Refused as e:
        log.warning("tenant %s's rule %s is not run: %s", item.tenant_id, item.rule_id, e)
        return None


@functools.lru_cache(maxsize=1024)  # each rule's YAML is parsed once per process, not per read
def _parsed(text: str) -> DetectionRule:
    return load_rule(text, TENANT)


def _registered(tenant_id: str) -> frozenset[str]:
    return frozenset(a.account_id for a in accounts.list_accounts(tenant_id))


def rule_set(tenant_id: str) -> RuleSet:
    """The rules that are on for the tenant, read now."""
    return RuleSet(rule for rule, enabled in catalogue(tenant_id) if enabled)


_cache: dict[str, tuple[float, RuleSet]] = {}
_cache_lock = threading.Lock()


def active(tenant_id: str, settings: Settings) -> RuleSet:
    """The tenant's rules that are on, as read at most ``rules_cache_seconds`` ago."""
    now = time.monotonic()
    with _cache_lock:
        kept = _cache.get(tenant_id)
    if kept is not None and now < kept[0]:
        return kept[1]
    rules = rule_set(tenant_id)
    with _cache_lock:
        _cache[tenant_id] = (now + settings.rules_cache_seconds, rules)
    return rules
