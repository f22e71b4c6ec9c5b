"""A Sigma rule is untrusted input (a tenant writes it): what kopter cannot run exactly, or
should not run at all, is refused when it loads, with one line that names what is wrong."""

from __future__ import annotations

import textwrap
import time

import pytest

from kopter.detections.sigma import (
    MAX_COMPARISONS,
    MAX_CONDITION_DEPTH,
    MAX_CONDITION_TERMS,
    MAX_RULE_BYTES,
    load_rule,
)
from kopter.errors import Refused

pytestmark = pytest.mark.unit

RULE_ID = "6c2f5b4d-0e2a-4d5f-9a1b-4d3c2b000001"
HEAD = f"""\
title: a tenant's rule
id: {RULE_ID}
level: medium
logsource: {{product: aws, service: cloudtrail}}
"""


def with_detection(detection: str) -> str:
    return HEAD + "detection:\n" + textwrap.indent(textwrap.dedent(detection), "  ") + "\n"


def refusal(text: str) -> str:
    with pytest.raises(Refused) as refused:
        load_rule(text, "tenant")
    message = str(refused.value)
    assert "\n" not in message and message.startswith("Sigma rule"), message
    return message


def test_a_good_rule_loads():
    """The control: the rule every refusal below starts from."""
    assert load_rule(with_detection("s: {eventName: A}\ncondition: s"), "tenant").id == RULE_ID


def test_a_rule_over_64_kib():
    padding = "# " + "x" * 200 + "\n"
    text = with_detection("s: {eventName: A}\ncondition: s")
    text += padding * ((MAX_RULE_BYTES - len(text)) // len(padding) + 1)
    assert len(text.encode()) > MAX_RULE_BYTES
    assert f"bytes: at most {MAX_RULE_BYTES:,}" in refusal(text)
    assert load_rule(text[: MAX_RULE_BYTES - 10], "tenant")  # just under the limit: fine


def test_too_many_comparisons():
    values = ", ".join(f"v{i}" for i in range(MAX_COMPARISONS + 1))
    message = refusal(with_detection(f"s: {{eventName: [{values}]}}\ncondition: s"))
    assert message.endswith(f"{MAX_COMPARISONS + 1} comparisons: at most {MAX_COMPARISONS}")
    fewer = ", ".join(f"v{i}" for i in range(MAX_COMPARISONS))
    assert load_rule(with_detection(f"s: {{eventName: [{fewer}]}}\ncondition: s"), "tenant")


def test_too_many_comparisons_once_the_condition_expands_them():
    values = ", ".join(f"v{i}" for i in range(100))
    detection = f"s: {{eventName: [{values}]}}\ncondition: s or not s or s and s\n"
    message = refusal(with_detection(detection))
    assert message.endswith("400 comparisons once its condition is expanded: at most 300")


def test_a_condition_of_too_many_names_or_brackets():
    names = " or ".join(["s"] * (MAX_CONDITION_TERMS + 1))
    assert f"names: at most {MAX_CONDITION_TERMS}" in refusal(
        with_detection(f"s: {{eventName: A}}\ncondition: {names}")
    )
    them = " or ".join(["1 of them"] * (MAX_CONDITION_TERMS + 1))
    assert f"names: at most {MAX_CONDITION_TERMS}" in refusal(
        with_detection(f"s: {{eventName: A}}\ncondition: {them}")
    )
    deep = "(" * (MAX_CONDITION_DEPTH + 1) + "s" + ")" * (MAX_CONDITION_DEPTH + 1)
    assert f"brackets deep: at most {MAX_CONDITION_DEPTH}" in refusal(
        with_detection(f"s: {{eventName: A}}\ncondition: '{deep}'")
    )


@pytest.mark.parametrize(
    "modifier", ["base64offset", "base64", "windash", "wide", "expand", "hour"]
)
def test_a_modifier_kopter_does_not_evaluate(modifier: str):
    value = "5" if modifier == "hour" else "'%x%'" if modifier == "expand" else "x"
    message = refusal(with_detection(f"s: {{eventName|{modifier}: {value}}}\ncondition: s"))
    assert f"the modifier {modifier!r} on field 'eventName'" in message
    assert "contains" in message  # the modifiers kopter does evaluate are named


def test_an_unknown_modifier():
    assert "Unknown modifier 'sounds_like'" in refusal(
        with_detection("s: {eventName|sounds_like: x}\ncondition: s")
    )


def test_a_keyword_without_a_field():
    assert "a keyword" in refusal(with_detection("s: [StopLogging]\ncondition: s"))


def test_a_regular_expression_re2_cannot_run():
    """Backreferences and lookarounds need backtracking: RE2 has neither, and refuses them."""
    assert "(?=" in refusal(with_detection("s: {eventName|re: 'Stop(?=Logging)'}\ncondition: s"))
    assert "is invalid" in refusal(with_detection("s: {eventName|re: '(a)\\1'}\ncondition: s"))
    assert "is invalid" in refusal(with_detection("s: {eventName|re: '(unclosed'}\ncondition: s"))


@pytest.mark.parametrize(
    "text, expected",
    [
        ("title: [unclosed", "not valid YAML"),
        (HEAD + "title: again\n", "not valid YAML: Duplicate key 'title'"),
        (HEAD + "---\n" + HEAD, "not valid YAML"),
        ("- a list\n- of things\n", "not a mapping"),
        ("just text", "not a mapping"),
    ],
)
def test_what_is_not_one_rule_in_yaml(text: str, expected: str):
    assert expected in refusal(text)


def test_yaml_aliases_that_expand_without_end():
    laughs = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    for name, previous in zip("bcdefgh", "abcdefg", strict=True):
        laughs += f"{name}: &{name} [{', '.join([f'*{previous}'] * 10)}]\n"
    started = time.monotonic()
    assert "too many nodes" in refusal(laughs + HEAD)
    assert time.monotonic() - started < 10  # refused before it is expanded


def test_a_correlation_or_a_filter_rule():
    correlation = HEAD + "correlation: {type: event_count, rules: [x], group-by: [a]}\n"
    assert "a correlation rule, which kopter does not run" in refusal(correlation)
    assert "a filter rule" in refusal(HEAD + "filter: {rules: [x]}\n")


def test_the_count_aggregation_of_old_sigma():
    message = refusal(with_detection("s: {eventName: A}\ncondition: s | count() > 5"))
    assert "pipe syntax" in message


def test_a_rule_for_other_logs():
    text = with_detection("s: {Image|endswith: '\\cmd.exe'}\ncondition: s").replace(
        "{product: aws, service: cloudtrail}", "{product: windows, category: process_creation}"
    )
    assert "logsource must be product aws, service cloudtrail (it is product windows" in refusal(
        text
    )


def test_what_a_rule_must_say_about_itself():
    good = with_detection("s: {eventName: A}\ncondition: s")
    assert "no level" in refusal(good.replace("level: medium\n", ""))
    assert "Sigma rule level" in refusal(good.replace("level: medium", "level: urgent"))
    assert "no id" in refusal(good.replace(f"id: {RULE_ID}\n", ""))
    assert "must be an UUID" in refusal(good.replace(RULE_ID, "my-rule"))
    assert "must have a title" in refusal(good.replace("title: a tenant's rule\n", ""))


def test_a_condition_that_names_what_is_not_there():
    assert "Detection 'filter' not defined" in refusal(
        with_detection("s: {eventName: A}\ncondition: s and not filter")
    )
    assert "doesn't match any detection" in refusal(
        with_detection("s: {eventName: A}\ncondition: 1 of filter_*")
    )
    assert "condition 's and': Expected" in refusal(
        with_detection("s: {eventName: A}\ncondition: s and")
    )
