"""Sigma rules loaded with pySigma (which parses) and matched by kopter (which evaluates).

``load_rule`` takes one rule's YAML, from SigmaHQ or from a tenant, and gives a
``DetectionRule`` or refuses it with one line naming what is wrong. A rule is untrusted input:
it is refused when it is over ``MAX_RULE_BYTES``, holds more than ``MAX_COMPARISONS`` field
comparisons, has a condition of more than ``MAX_CONDITION_TERMS`` names or nested deeper than
``MAX_CONDITION_DEPTH`` brackets, uses a modifier outside ``MODIFIERS``, a keyword, or a regular
expression RE2 cannot run (RE2 runs in linear time, whatever the expression). A rule kopter
could only match wrongly is refused, never loaded.

``bundled_rules`` are SigmaHQ's CloudTrail rules vendored in this directory (``PROVENANCE.md``
says from where, ``LICENSE.Detection.Rules.md`` under which licence), with the fixes of
``kopter/detections/overrides.yml`` applied, each saying why.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from importlib import resources
from typing import Any

import yaml
from sigma.conditions import ConditionOR, SigmaCondition
from sigma.exceptions import SigmaConditionError, SigmaError
from sigma.modifiers import reverse_modifier_mapping
from sigma.policy import SigmaPolicy
from sigma.policy.regex_engine import RE2RegexEngine, RegexPattern
from sigma.rule import SigmaDetection, SigmaDetectionItem, SigmaRule
from sigma.rule.base import SigmaYAMLLoader, check_alias_expansion

from kopter.detections import condition, values
from kopter.detections.rules import LEVELS, DetectionRule
from kopter.errors import Refused

MAX_RULE_BYTES = 64 * 1024
MAX_COMPARISONS = 300
MAX_CONDITION_TERMS = 64
MAX_CONDITION_DEPTH = 16
# Sigma's modifiers that kopter evaluates. The others are refused: base64, base64offset, utf16*,
# wide and windash encode Windows command lines, expand needs a pipeline's placeholders, and
# minute…year read a timestamp as parts.
MODIFIERS = frozenset(
    (
        *("contains", "startswith", "endswith", "all", "cased", "neq"),  # strings, lists
        *("re", "i", "ignorecase", "m", "multiline", "s", "dotall"),  # regular expressions
        *("cidr", "fieldref", "exists", "lt", "lte", "gt", "gte"),
    )
)
_TERM = re.compile(r"[\w*-]+")
_OPERATORS = frozenset(("and", "or", "not", "of", "1", "any", "all"))  # "them" is a name


class _QuietRE2(RE2RegexEngine):
    """pySigma's RE2 engine (it checks each expression), without RE2's log on stderr."""

    def compile(self, pattern: str, flags: int = 0) -> RegexPattern:
        inline = "".join(f for bit, f in _RE_FLAGS.items() if flags & bit)
        compiled: RegexPattern = values.re2_compile(f"(?{inline}){pattern}" if inline else pattern)
        return compiled


_RE_FLAGS = {re.IGNORECASE: "i", re.MULTILINE: "m", re.DOTALL: "s"}
_POLICY = SigmaPolicy(regex_engine=_QuietRE2())


def load_rule(text: str, source: str) -> DetectionRule:
    """One Sigma rule's YAML (a single document) as a rule of ``source`` (sigma or tenant)."""
    size = len(text.encode(errors="replace"))
    if size > MAX_RULE_BYTES:
        raise Refused(f"Sigma rule of {size:,} bytes: at most {MAX_RULE_BYTES:,}")
    return rule_from_dict(parse_yaml(text), source)


def parse_yaml(text: str) -> dict[str, Any]:
    try:
        data = yaml.load(text, SigmaYAMLLoader)  # a safe loader that refuses duplicate keys
        check_alias_expansion(data, SigmaError)
    except (yaml.YAMLError, SigmaError) as e:
        raise Refused(f"Sigma rule is not valid YAML: {_line(e)}") from None
    if not isinstance(data, dict):
        raise Refused("Sigma rule is not valid: the YAML is not a mapping of a rule's fields")
    return data


def rule_from_dict(data: Mapping[str, Any], source: str, fixed: str | None = None) -> DetectionRule:
    """A parsed rule checked, compiled and described; ``fixed`` says why kopter changed it."""
    name = str(data.get("id") or data.get("title") or "without an id")[:80]
    for kind in ("correlation", "filter"):
        if kind in data:
            raise Refused(
                f"Sigma rule {name}: a {kind} rule, which kopter does not run (it matches one "
                "record at a time)"
            )
    try:
        rule = SigmaRule.from_dict(dict(data), policy=_POLICY)
    except SigmaError as e:
        raise Refused(f"Sigma rule {name}: {_line(e)}") from None
    except (TypeError, ValueError, AttributeError) as e:  # pySigma on a shape it did not expect
        raise Refused(f"Sigma rule {name}: not a valid rule ({_line(e)})") from None
    rule_id = _checked(rule)
    try:
        tree, predicate = _compiled(rule)
    except (SigmaError, condition.Unsupported) as e:
        raise Refused(f"Sigma rule {rule_id}: {_line(e)}") from None
    level = str(rule.level)
    return DetectionRule(
        id=rule_id,
        title=rule.title,
        source=source,
        author=rule.author or "",
        level=level,
        description=(rule.description or "").strip(),
        references=tuple(str(r) for r in rule.references),
        tags=tuple(str(tag) for tag in rule.tags),
        predicate=predicate,
        event_names=condition.required(tree, "eventName"),
        event_sources=condition.required(tree, "eventSource"),
        falsepositives=tuple(str(f) for f in rule.falsepositives),
        fixed=fixed,
    )


def _checked(rule: SigmaRule) -> str:
    """The rule's id, once what kopter needs of a rule beside its detection is there."""
    if rule.id is None:
        raise Refused(f"Sigma rule {rule.title!r}: no id (a UUID, which enable and disable name)")
    rule_id = str(rule.id)
    if rule.level is None or str(rule.level) not in LEVELS:
        raise Refused(f"Sigma rule {rule_id}: no level (one of {', '.join(LEVELS)})")
    logsource = rule.logsource
    if (logsource.product, logsource.service) != ("aws", "cloudtrail"):
        raise Refused(
            f"Sigma rule {rule_id}: its logsource must be product aws, service cloudtrail "
            f"(it is product {logsource.product}, service {logsource.service}, "
            f"category {logsource.category})"
        )
    return rule_id


def _compiled(rule: SigmaRule) -> tuple[Any, condition.Predicate]:
    """The rule's condition tree and its predicate, after the limits and the modifiers."""
    detections = rule.detection
    count = sum(_comparisons(d) for d in detections.detections.values())
    if count > MAX_COMPARISONS:
        raise condition.Unsupported(f"{count} comparisons: at most {MAX_COMPARISONS}")
    for text in detections.condition:
        _check_condition(text)
    trees = [_parsed(parsed) for parsed in detections.parsed_condition]
    if any(tree is None for tree in trees):
        raise condition.Unsupported("a condition that selects nothing")
    tree = trees[0] if len(trees) == 1 else ConditionOR(trees)
    count = condition.comparisons(tree)
    if count > MAX_COMPARISONS:
        raise condition.Unsupported(
            f"{count} comparisons once its condition is expanded: at most {MAX_COMPARISONS}"
        )
    return tree, condition.compile_tree(tree)


def _parsed(parsed: SigmaCondition) -> Any:
    try:
        return parsed.parse()
    except SigmaConditionError as e:
        raise condition.Unsupported(f"condition {parsed.condition!r}: {_line(e)}") from None


def _comparisons(detection: SigmaDetection | SigmaDetectionItem) -> int:
    """The values of a detection, once each modifier is known to be one kopter evaluates."""
    if isinstance(detection, SigmaDetection):
        return sum(_comparisons(item) for item in detection.detection_items)
    for modifier in detection.modifiers:
        name = reverse_modifier_mapping[modifier.__name__]
        if name not in MODIFIERS:
            raise condition.Unsupported(
                f"the modifier {name!r} on field {detection.field!r}, which kopter does not "
                f"evaluate (it does: {', '.join(sorted(MODIFIERS))})"
            )
    return max(len(detection.value), 1)


def _check_condition(text: Any) -> None:
    """Bound what pySigma's parser is given: it recurses on brackets, and each name may expand
    to every detection of the rule."""
    if not isinstance(text, str):
        raise condition.Unsupported(f"a condition that is not a string: {text!r}")
    terms = [t for t in _TERM.findall(text) if t.lower() not in _OPERATORS]
    if len(terms) > MAX_CONDITION_TERMS:
        raise condition.Unsupported(
            f"a condition of {len(terms)} names: at most {MAX_CONDITION_TERMS}"
        )
    depth = deepest = 0
    for char in text:
        depth += (char == "(") - (char == ")")
        deepest = max(deepest, depth)
    if deepest > MAX_CONDITION_DEPTH:
        raise condition.Unsupported(
            f"a condition nested {deepest} brackets deep: at most {MAX_CONDITION_DEPTH}"
        )


def _line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


# --- the rules kopter ships -------------------------------------------------------------------


@functools.cache
def bundled_rules() -> tuple[DetectionRule, ...]:
    """SigmaHQ's CloudTrail rules, each with its override applied, in file name order."""
    fixes = overrides()
    rules = []
    for text in vendored().values():
        data = parse_yaml(text)
        fix = fixes.get(str(data.get("id")))
        if fix is not None:
            data = {**data, "detection": fix["detection"]}
        rules.append(rule_from_dict(data, "sigma", fix["reason"] if fix else None))
    return tuple(rules)


def vendored() -> dict[str, str]:
    """Each vendored rule file's name and text, as copied from SigmaHQ."""
    here = resources.files(__name__)
    return {
        entry.name: entry.read_text(encoding="utf-8")
        for entry in sorted(here.iterdir(), key=lambda entry: entry.name)
        if entry.name.endswith(".yml")
    }


@functools.cache
def overrides() -> dict[str, dict[str, Any]]:
    """kopter's fixes to vendored rules, by rule id: the ``detection`` that replaces upstream's
    and the ``reason`` it had to."""
    text = resources.files("kopter.detections").joinpath("overrides.yml").read_text("utf-8")
    loaded: dict[str, dict[str, Any]] = yaml.safe_load(text)
    return loaded
