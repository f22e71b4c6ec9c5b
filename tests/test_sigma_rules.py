"""SigmaHQ's CloudTrail rules as kopter ships them: each matches the calls of its fixture in
tests/fixtures/sigma/ and misses the look-alikes there (real Stratus Red Team detonation records
where they exist), alone and through the index; each override is still needed."""

from __future__ import annotations

import pytest

from kopter.detections.rules import LEVELS, RuleSet
from kopter.detections.sigma import bundled_rules, load_rule, overrides, parse_yaml, vendored
from kopter.errors import Refused
from tests.support.sigma_cases import Case, cases, fixture_files

pytestmark = pytest.mark.unit

VENDORED = vendored()
BY_FILE = dict(zip(VENDORED, bundled_rules(), strict=True))
ALL_CASES = [case for name in VENDORED for case in cases(name)]


def test_every_vendored_rule_is_shipped_and_has_its_records():
    """57 files of SigmaHQ's directory, each loaded (none refused, none turned off), each with
    at least one call it must match and one it must miss."""
    assert len(VENDORED) == 57
    assert [path.name for path in fixture_files()] == list(VENDORED)
    for name in VENDORED:
        kinds = {case.expected for case in cases(name)}
        assert kinds == {True, False}, name


@pytest.mark.parametrize("case", ALL_CASES, ids=lambda case: case.label)
def test_rule_on_its_records(case: Case):
    rule = BY_FILE[case.rule_file]
    assert rule.matches(case.record) is case.expected, case.why


@pytest.fixture(scope="module")
def every_rule() -> RuleSet:
    return RuleSet(bundled_rules())


@pytest.mark.parametrize("case", ALL_CASES, ids=lambda case: case.label)
def test_the_index_finds_what_the_rule_matches(case: Case, every_rule: RuleSet):
    """Through the RuleSet of every bundled rule: the index never hides a rule's match."""
    found = every_rule.matching(case.record)
    assert (BY_FILE[case.rule_file] in found) is case.expected, case.why
    assert found == [rule for rule in every_rule.rules if rule.matches(case.record)]


def _upstream_fails(rule_id: str) -> str:
    """How the upstream rule, as SigmaHQ wrote it, goes wrong on its fixture ('' if it does
    not)."""
    name = next(n for n, text in VENDORED.items() if str(parse_yaml(text).get("id")) == rule_id)
    try:
        upstream = load_rule(VENDORED[name], "sigma")
    except Refused as e:
        return f"refused: {e}"
    wrong = [c.label for c in cases(name) if upstream.matches(c.record) is not c.expected]
    return ", ".join(wrong)


@pytest.mark.parametrize("rule_id", sorted(overrides()))
def test_every_override_is_still_needed(rule_id: str):
    """An override that upstream made needless (its rule now passes the fixture) fails here."""
    assert _upstream_fails(rule_id), f"upstream rule {rule_id} passes its fixture as it is"


def test_the_overrides_are_shipped_with_their_reasons():
    fixed = {rule.id: rule.fixed for rule in bundled_rules() if rule.fixed}
    assert fixed == {rule_id: fix["reason"] for rule_id, fix in overrides().items()}
    assert set(overrides()) <= {str(parse_yaml(text)["id"]) for text in VENDORED.values()}


def test_each_rule_keeps_what_its_licence_and_a_finding_need():
    rules = bundled_rules()
    assert len({rule.id for rule in rules}) == len(rules)
    for rule in rules:
        assert rule.source == "sigma"
        assert rule.author.strip(), rule.id  # the DRL: every match names the rule's author
        assert rule.level in LEVELS
        assert rule.title and rule.description
    stop = BY_FILE["aws_cloudtrail_disable_logging.yml"]
    assert (stop.author, stop.level) == ("vitaliy0x1", "medium")
    assert stop.tags == ("attack.defense-impairment", "attack.t1685.002")
