"""A tenant's detection rules: kopter's, SigmaHQ's and its own, each with whether it is on
(``kopter.detections.tenant_rules`` keeps them)."""

from __future__ import annotations

from kopter.detections import tenant_rules
from kopter.detections.findings import RuleRef, rule_ref
from kopter.detections.rules import DetectionRule


class RuleRow(RuleRef):
    enabled: bool
    description: str
    tags: list[str]
    references: list[str]
    fixed: str | None  # why kopter changed SigmaHQ's rule, when it did


def query(tenant_id: str) -> list[tuple[DetectionRule, bool]]:
    return tenant_rules.catalogue(tenant_id)


def view(rule: DetectionRule, enabled: bool) -> RuleRow:
    return {
        **rule_ref(rule),
        "enabled": enabled,
        "description": rule.description,
        "tags": list(rule.tags),
        "references": list(rule.references),
        "fixed": rule.fixed,
    }
