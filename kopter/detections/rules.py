"""What a detection rule is, whatever wrote it, and the index that keeps matching cheap.

A rule judges one raw CloudTrail record (the JSON object as CloudTrail delivers it). Sigma's
rules (``kopter.detections.sigma``) and kopter's own both take this shape, so ingest runs them
side by side. A rule may say which event names, or failing that which event sources, a record
must have for it to match (compared lowercased: Sigma's strings are case-insensitive);
``RuleSet`` tests a record only against the rules of its own call and the few that name none.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

SOURCES = ("kopter", "sigma", "tenant")
LEVELS = ("informational", "low", "medium", "high", "critical")  # Sigma's, least severe first


@dataclass(frozen=True, eq=False)
class DetectionRule:
    id: str
    title: str
    source: str  # one of SOURCES
    author: str  # shown with every finding: the Detection Rule License asks for it
    level: str  # one of LEVELS
    description: str
    references: tuple[str, ...]
    tags: tuple[str, ...]  # Sigma's: attack.t1562.008, attack.defense-evasion, …
    predicate: Callable[[Mapping[str, Any]], bool] = field(repr=False)
    # Every record the rule matches has one of these eventName (or eventSource) values, in
    # any case; None: the rule does not say.
    event_names: frozenset[str] | None = None
    event_sources: frozenset[str] | None = None
    falsepositives: tuple[str, ...] = ()
    fixed: str | None = None  # why kopter changed a vendored rule's detection, if it did

    def matches(self, record: Mapping[str, Any]) -> bool:
        return self.predicate(record)


class RuleSet:
    """Rules indexed by the calls they look at: ``matching`` tests a record against the rules
    of its event name, else of its event source, and those that name neither."""

    def __init__(self, rules: Iterable[DetectionRule]) -> None:
        self.rules = tuple(rules)
        self._order = {id(rule): i for i, rule in enumerate(self.rules)}
        self._by_name: dict[str, list[DetectionRule]] = defaultdict(list)
        self._by_source: dict[str, list[DetectionRule]] = defaultdict(list)
        self._anywhere: list[DetectionRule] = []
        for rule in self.rules:
            if rule.event_names is not None:
                for name in {name.lower() for name in rule.event_names}:
                    self._by_name[name].append(rule)
            elif rule.event_sources is not None:
                for source in {source.lower() for source in rule.event_sources}:
                    self._by_source[source].append(rule)
            else:
                self._anywhere.append(rule)

    def __len__(self) -> int:
        return len(self.rules)

    def matching(self, record: Mapping[str, Any]) -> list[DetectionRule]:
        """The rules ``record`` matches, in the order the set was given them."""
        name, source = record.get("eventName"), record.get("eventSource")
        if type(name) is str and type(source) is str:
            candidates: Iterable[DetectionRule] = (
                *self._by_name.get(name.lower(), ()),
                *self._by_source.get(source.lower(), ()),
                *self._anywhere,
            )
        else:  # an odd record: the index cannot say, so every rule looks
            candidates = self.rules
        found = [rule for rule in candidates if rule.predicate(record)]
        if len(found) > 1:
            found.sort(key=lambda rule: self._order[id(rule)])
        return found
