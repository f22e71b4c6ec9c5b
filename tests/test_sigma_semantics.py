"""Sigma's matching semantics as kopter evaluates them, one behaviour at a time: each rule here
is loaded through pySigma exactly as a tenant's would be, and judged on small records."""

from __future__ import annotations

import inspect
import sys
import textwrap
from typing import Any

import pytest

from kopter.detections.rules import DetectionRule, RuleSet
from kopter.detections.sigma import load_rule

pytestmark = pytest.mark.unit

HEAD = """\
title: a tenant's rule
id: 5b1e4a3c-9d1f-4c4e-8f0a-3c2b1a000001
author: the tenant
level: high
logsource: {product: aws, service: cloudtrail}
detection:
"""


def rule(detection: str, rule_id: str = "5b1e4a3c-9d1f-4c4e-8f0a-3c2b1a000001") -> DetectionRule:
    text = HEAD.replace("5b1e4a3c-9d1f-4c4e-8f0a-3c2b1a000001", rule_id)
    return load_rule(text + textwrap.indent(textwrap.dedent(detection), "  "), "tenant")


def judged(detection: str, *records: dict[str, Any]) -> list[bool]:
    loaded = rule(detection)
    return [loaded.matches(record) for record in records]


def test_a_field_is_a_dotted_path_through_objects_and_arrays():
    detection = """
        s: {userIdentity.sessionContext.sessionIssuer.type: Role}
        condition: s
    """
    issuer = {"sessionIssuer": {"type": "Role"}}
    assert judged(
        detection,
        {"userIdentity": {"sessionContext": issuer}},
        {
            "userIdentity": [
                {"sessionContext": {"sessionIssuer": {"type": "User"}}},
                {"sessionContext": issuer},
            ]
        },
        {"userIdentity": {"sessionContext.sessionIssuer": {"type": "Role"}}},  # a key with dots
        {  # both routes there: the dotted key's value counts too
            "userIdentity": {
                "sessionContext": {"sessionIssuer": {"type": "User"}},
                "sessionContext.sessionIssuer": {"type": "Role"},
            }
        },
        {"userIdentity": {"sessionContext": {"sessionIssuer": {"type": "User"}}}},
        {"userIdentity.sessionContext": None},
        {},
    ) == [True, True, True, True, False, False, False]


def test_any_element_of_an_array_matches():
    detection = """
        s: {requestParameters.containerDefinitions.command|contains: CREDENTIALS}
        condition: s
    """
    definitions = [
        {"command": ["sh", "-c", "sleep 1"]},
        {"command": ["curl", "$AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"]},
    ]
    assert judged(
        detection,
        {"requestParameters": {"containerDefinitions": definitions}},
        {"requestParameters": {"containerDefinitions": definitions[:1]}},
    ) == [True, False]


def test_null_is_a_missing_field_json_null_or_an_empty_array():
    detection = """
        s: {errorCode: null}
        condition: s
    """
    assert judged(
        detection, {}, {"errorCode": None}, {"errorCode": []}, {"errorCode": ""}, {"errorCode": "X"}
    ) == [True, True, True, False, False]


def test_exists_is_the_opposite_of_null():
    there, absent = (
        rule("s: {errorCode|exists: true}\ncondition: s"),
        rule("s: {errorCode|exists: false}\ncondition: s"),
    )
    records = [{}, {"errorCode": None}, {"errorCode": ""}, {"errorCode": 0}, {"errorCode": False}]
    assert [there.matches(r) for r in records] == [False, False, True, True, True]
    assert [absent.matches(r) for r in records] == [True, True, False, False, False]


def test_strings_compare_case_insensitively_as_whole_values():
    detection = """
        s: {eventName: StopLogging}
        condition: s
    """
    assert judged(
        detection,
        {"eventName": "stoplogging"},
        {"eventName": "STOPLOGGING"},
        {"eventName": "StopLoggingNow"},
        {"eventName": "xStopLogging"},
    ) == [True, True, False, False]


def test_wildcards_star_and_question_mark_and_an_escaped_star():
    star = rule("s: {userAgent: 'aws-cli/*Linux*'}\ncondition: s")
    assert [
        star.matches({"userAgent": ua})
        for ua in ("AWS-CLI/2.15 Linux/6", "aws-cli/Linux", "aws-cli/2 Darwin")
    ] == [True, True, False]
    one = rule("s: {eventName: 'Get?'}\ncondition: s")
    assert [one.matches({"eventName": n}) for n in ("GetX", "Get", "GetXY")] == [True, False, False]
    # An escaped star is a star; in single-quoted YAML the backslash reaches Sigma as written.
    literal = rule("s: {requestParameters.policy: 'arn:aws:s3:::\\*'}\ncondition: s")
    assert [
        literal.matches({"requestParameters": {"policy": p}})
        for p in ("arn:aws:s3:::*", "arn:aws:s3:::bucket")
    ] == [True, False]
    # Many stars stay linear (RE2), where a backtracking matcher would take hours on this.
    many = rule("s: {userAgent: '*a*a*a*a*a*a*a*a*a*a*b'}\ncondition: s")
    assert many.matches({"userAgent": "a" * 20_000}) is False


def test_booleans_and_numbers_compare_as_their_text():
    detection = """
        s: {requestParameters.enable: 'false'}
        condition: s
    """
    assert judged(
        detection,
        {"requestParameters": {"enable": False}},
        {"requestParameters": {"enable": "FALSE"}},
        {"requestParameters": {"enable": True}},
        {"requestParameters": {"enable": 0}},
    ) == [True, True, False, False]
    number = rule("s: {requestParameters.ruleNumber: 100}\ncondition: s")
    assert [
        number.matches({"requestParameters": {"ruleNumber": v}})
        for v in (100, "100", 100.5, "0100")
    ] == [True, True, False, False]
    yes = rule("s: {responseElements.publiclyAccessible: true}\ncondition: s")
    assert [
        yes.matches({"responseElements": {"publiclyAccessible": v}}) for v in (True, "True", 1)
    ] == [True, True, False]


def test_contains_startswith_endswith():
    assert judged(
        "s: {userAgent|contains: Browser}\ncondition: s",
        {"userAgent": "S3 BROWSER 11"},
        {"userAgent": "S3 Brow"},
    ) == [True, False]
    assert judged(
        "s: {eventName|startswith: UpdateFunctionConfiguration}\ncondition: s",
        {"eventName": "UpdateFunctionConfiguration20150331v2"},
        {"eventName": "xUpdateFunctionConfiguration"},
    ) == [True, False]
    assert judged(
        "s: {userIdentity.arn|endswith: ':root'}\ncondition: s",
        {"userIdentity": {"arn": "arn:aws:iam::111122223333:root"}},
        {"userIdentity": {"arn": "arn:aws:iam::111122223333:root/x"}},
    ) == [True, False]


def test_a_list_of_values_is_or_and_all_is_and():
    any_of = rule("s: {eventName: [StopLogging, DeleteTrail]}\ncondition: s")
    assert [
        any_of.matches({"eventName": n}) for n in ("DeleteTrail", "StopLogging", "UpdateTrail")
    ] == [True, True, False]
    every = rule("s: {requestParameters|contains|all: ['s3:GetObject', Allow]}\ncondition: s")
    assert every.matches({"requestParameters": {"policy": "Allow s3:GetObject"}}) is True
    assert every.matches({"requestParameters": {"policy": "Deny s3:GetObject"}}) is False


def test_contains_on_an_object_looks_at_every_value_inside_it_not_its_keys():
    detection = """
        s: {requestParameters|contains: Suspended}
        condition: s
    """
    assert judged(
        detection,
        {"requestParameters": {"VersioningConfiguration": {"Status": "Suspended"}}},
        {"requestParameters": {"tags": [{"value": "was suspended"}]}},
        {"requestParameters": {"Suspended": True}},  # a key, not a value
        {"requestParameters": {"Status": "Enabled"}},
    ) == [True, True, False, False]
    # A quote inside a string value is a quote: the JSON text's escaping does not get in the way.
    quoted = rule("""s: {requestParameters|contains: '"s3:GetObject"'}\ncondition: s""")
    assert quoted.matches({"requestParameters": {"policyDocument": '{"Action": "s3:GetObject"}'}})


def test_re_is_a_case_sensitive_search_and_its_flags():
    search = rule("s: {userIdentity.arn|re: ':assumed-role/aws:.+'}\ncondition: s")
    assert [
        search.matches({"userIdentity": {"arn": a}})
        for a in (
            "arn:aws:sts::1:assumed-role/aws:ec2-instance/i-1",
            "arn:aws:sts::1:ASSUMED-ROLE/aws:x",
            "arn:aws:sts::1:assumed-role/aws-x/y",
        )
    ] == [True, False, False]
    anchored = rule("s: {eventName|re: '^Get'}\ncondition: s")
    assert [anchored.matches({"eventName": n}) for n in ("GetObject", "ForGet")] == [True, False]
    folded = rule("s: {eventName|re|i: '^get'}\ncondition: s")
    assert folded.matches({"eventName": "GetObject"}) is True
    lines = rule("s: {errorMessage|re|m: '^denied$'}\ncondition: s")
    assert lines.matches({"errorMessage": "first\ndenied\nlast"}) is True
    dotall = rule("s: {errorMessage|re|s: 'first.last'}\ncondition: s")
    assert [
        dotall.matches({"errorMessage": "first\nlast"}),
        rule("s: {errorMessage|re: 'first.last'}\ncondition: s").matches(
            {"errorMessage": "first\nlast"}
        ),
    ] == [True, False]
    # Linear in the text whatever the expression: (a+)+$ backtracks forever in Python's re.
    nested = rule("s: {userAgent|re: '(a+)+$'}\ncondition: s")
    assert nested.matches({"userAgent": "a" * 50_000 + "!"}) is False


def test_cased_compares_case_sensitively():
    cased = rule("s: {eventName|cased: StopLogging}\ncondition: s")
    assert [cased.matches({"eventName": n}) for n in ("StopLogging", "stoplogging")] == [
        True,
        False,
    ]


def test_cidr():
    detection = """
        s: {sourceIPAddress|cidr: [10.0.0.0/8, 172.16.0.0/12, '2001:db8::/32']}
        condition: s
    """
    assert judged(
        detection,
        {"sourceIPAddress": "10.1.2.3"},
        {"sourceIPAddress": "172.31.255.255"},
        {"sourceIPAddress": "2001:db8::1"},
        {"sourceIPAddress": "100.64.0.1"},  # its text starts as 10/8's does
        {"sourceIPAddress": "172.32.0.1"},
        {"sourceIPAddress": "2001:db9::1"},
        {"sourceIPAddress": "AWS Internal"},
        {"sourceIPAddress": "ec2.amazonaws.com"},
    ) == [True, True, True, False, False, False, False, False]


def test_fieldref_compares_two_fields_of_the_record():
    same = rule("s: {userIdentity.userName|fieldref: requestParameters.userName}\ncondition: s")
    assert [
        same.matches(
            {"userIdentity": {"userName": "Alice"}, "requestParameters": {"userName": "alice"}}
        ),
        same.matches(
            {"userIdentity": {"userName": "alice"}, "requestParameters": {"userName": "bob"}}
        ),
        same.matches({"userIdentity": {"userName": "alice"}}),
    ] == [True, False, False]
    ends = rule("s: {userIdentity.arn|fieldref|endswith: requestParameters.userName}\ncondition: s")
    inside = rule(
        "s: {userIdentity.arn|fieldref|contains: requestParameters.userName}\ncondition: s"
    )
    starts = rule(
        "s: {userIdentity.arn|fieldref|startswith: requestParameters.prefix}\ncondition: s"
    )
    record = {
        "userIdentity": {"arn": "arn:aws:iam::1:user/bob-admin"},
        "requestParameters": {"userName": "bob", "prefix": "ARN:aws"},
    }
    assert [ends.matches(record), inside.matches(record), starts.matches(record)] == [
        False,
        True,
        True,
    ]
    own = {
        "userIdentity": {"arn": "arn:aws:iam::1:user/Bob"},
        "requestParameters": {"userName": "bob"},
    }
    assert [ends.matches(own), inside.matches(own), starts.matches(own)] == [True, True, False]


def test_numeric_comparisons():
    detection = """
        s: {requestParameters.durationSeconds|gte: 43200}
        condition: s
    """
    assert judged(
        detection,
        {"requestParameters": {"durationSeconds": 129600}},
        {"requestParameters": {"durationSeconds": "43200"}},
        {"requestParameters": {"durationSeconds": 3600}},
        {"requestParameters": {"durationSeconds": "long"}},
        {"requestParameters": {"durationSeconds": "inf"}},
    ) == [True, True, False, False, False]
    assert rule("s: {n|lt: 5}\ncondition: s").matches({"n": 4.5}) is True
    assert rule("s: {n|lte: 5}\ncondition: s").matches({"n": 5}) is True
    assert rule("s: {n|gt: 5}\ncondition: s").matches({"n": 5}) is False


def test_neq_negates_one_comparison():
    other = rule("s: {eventSource: iam.amazonaws.com, userIdentity.type|neq: Root}\ncondition: s")
    assert [
        other.matches({"eventSource": "iam.amazonaws.com", "userIdentity": {"type": "IAMUser"}}),
        other.matches({"eventSource": "iam.amazonaws.com", "userIdentity": {"type": "Root"}}),
    ] == [True, False]


@pytest.mark.parametrize(
    "condition, expected",
    [
        ("sel and not filter", [True, False, False, False]),
        ("sel or filter", [True, True, False, False]),
        ("not (sel or filter)", [False, False, True, True]),
        ("1 of sel*", [True, True, True, False]),
        ("all of sel*", [False, True, False, False]),
        ("1 of them", [True, True, True, False]),
        ("all of them", [False, True, False, False]),
        ("any of sel* and not 1 of filter*", [True, False, True, False]),
        ("sel and (filter or selection_b)", [False, True, False, False]),
    ],
)
def test_condition_forms(condition: str, expected: list[bool]):
    detection = f"""
        sel: {{eventName: A}}
        selection_b: {{userAgent: X}}
        filter: {{userAgent: X, eventName: A}}
        condition: {condition}
    """
    records = [
        {"eventName": "A"},
        {"eventName": "A", "userAgent": "X"},
        {"eventName": "B", "userAgent": "X"},
        {"eventName": "B"},
    ]
    # The first holds sel; the second sel, selection_b and filter; the third selection_b.
    assert judged(detection, *records) == expected


def test_a_list_of_maps_is_or_and_a_list_of_conditions_is_or():
    either = rule("s:\n  - {eventName: A}\n  - {userAgent: X}\ncondition: s")
    assert [
        either.matches(r) for r in ({"eventName": "A"}, {"userAgent": "X"}, {"eventName": "B"})
    ] == [True, True, False]
    several = rule("a: {eventName: A}\nb: {userAgent: X}\ncondition: [a, b]")
    assert [
        several.matches(r) for r in ({"eventName": "A"}, {"userAgent": "X"}, {"eventName": "B"})
    ] == [True, True, False]


def test_a_rule_of_many_values_is_judged_within_a_shallow_stack():
    """300 values nest as a balanced tree: a worker deep in its own calls judges them still."""
    names = ", ".join(f"Call{i}" for i in range(300))
    loaded = rule(f"s: {{eventName: [{names}]}}\ncondition: s")
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(len(inspect.stack()) + 40)
    try:
        assert [loaded.matches({"eventName": n}) for n in ("call299", "Call300")] == [True, False]
    finally:
        sys.setrecursionlimit(limit)


def test_the_rule_describes_itself():
    loaded = rule("s: {eventName: A}\ncondition: s")
    assert (loaded.id, loaded.title, loaded.source, loaded.author, loaded.level) == (
        "5b1e4a3c-9d1f-4c4e-8f0a-3c2b1a000001",
        "a tenant's rule",
        "tenant",
        "the tenant",
        "high",
    )
    assert loaded.fixed is None


# --- the index ---------------------------------------------------------------------------------


def test_the_index_reads_the_event_names_and_sources_a_rule_requires():
    named = rule(
        "s: {eventSource: iam.amazonaws.com, eventName: [CreateUser, DeleteUser]}\ncondition: s"
    )
    assert (named.event_names, named.event_sources) == (
        frozenset({"createuser", "deleteuser"}),
        frozenset({"iam.amazonaws.com"}),
    )
    source_only = rule(
        "s: {eventSource: lambda.amazonaws.com, eventName|startswith: Update}\ncondition: s"
    )
    assert (source_only.event_names, source_only.event_sources) == (
        None,
        frozenset({"lambda.amazonaws.com"}),
    )
    either = rule("a: {eventName: A}\nb: {eventName: B, eventSource: s}\ncondition: a or b")
    assert (either.event_names, either.event_sources) == (frozenset({"a", "b"}), None)
    negated = rule("s: {eventName|neq: A}\ncondition: s")
    assert (negated.event_names, negated.event_sources) == (None, None)
    open_side = rule("a: {eventName: A}\nb: {userAgent: X}\ncondition: a or b")
    assert open_side.event_names is None


def test_the_rule_set_finds_every_match_in_order_and_only_tests_candidates():
    tested: list[str] = []

    def spy(name: str, inner: DetectionRule) -> DetectionRule:
        def predicate(record: Any) -> bool:
            tested.append(name)
            return inner.matches(record)

        return DetectionRule(**{**inner.__dict__, "id": name, "predicate": predicate})

    by_name = spy("by-name", rule("s: {eventName: StopLogging}\ncondition: s"))
    by_source = spy(
        "by-source",
        rule(
            "s: {eventSource: cloudtrail.amazonaws.com, eventName|startswith: Stop}\ncondition: s"
        ),
    )
    anywhere = spy("anywhere", rule("s: {userAgent|contains: cli}\ncondition: s"))
    other = spy("other", rule("s: {eventName: DeleteTrail}\ncondition: s"))
    rules = RuleSet([anywhere, other, by_source, by_name])
    record = {
        "eventName": "STOPLOGGING",
        "eventSource": "CloudTrail.amazonaws.com",
        "userAgent": "aws-cli",
    }
    assert [r.id for r in rules.matching(record)] == ["anywhere", "by-source", "by-name"]
    assert sorted(tested) == ["anywhere", "by-name", "by-source"]  # never "other"
    tested.clear()
    # An array where CloudTrail writes a string: the index cannot say, so every rule looks, and
    # the array's element matches.
    odd = {"eventName": ["StopLogging"], "eventSource": "x"}
    assert [r.id for r in rules.matching(odd)] == ["by-name"]
    assert sorted(tested) == ["anywhere", "by-name", "by-source", "other"]
