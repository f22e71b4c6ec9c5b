"""The template of `kopter deploy template`, checked without a stack: cfn-lint finds nothing,
checkov fails exactly the checks the template skips (each with its reason), every parameter that
is a setting has kopter's default and refuses in CloudFormation what the setting refuses, worker
groups are checked, and docs/deploying.md shows the scaling policy's own arithmetic."""

from __future__ import annotations

import copy
import json
import subprocess
from decimal import Decimal
from typing import Any

import pytest
from cfnlint.api import lint
from click.testing import CliRunner

from kopter.cli.root import cli
from kopter.deploy import groups, scaling
from kopter.deploy.parameters import SETTINGS
from kopter.errors import ConfigError, Refused
from kopter.settings import load
from tests.support.checkov import CHECKOV, MISSING
from tests.support.samples import ROOT

pytestmark = pytest.mark.unit


# Values each string setting takes, and values it refuses (CloudFormation must refuse those).
STRINGS = {
    "Prefix": (["kopter-prod-", "a", "x" * 40], ["bad prefix!", "x" * 41, "a.b"]),
    "PricingRegions": (["", "us-east-1", "us-east-1,eu-west-3"], ["us-east-1,EU", "east"]),
    "BackupTag": (["kopter:backup", "x" * 128], ["aws:backup", "AWS:x", "x" * 129]),
    "NotificationsTopicArn": (
        ["", "arn:aws:sns:us-east-1:123456789012:kopter"],
        ["arn:aws:sqs:us-east-1:123456789012:q", "topic"],
    ),
    "OnboardingTemplateUrl": (
        ["", "https://bucket.s3.amazonaws.com/kopter.yaml"],
        ["http://bucket/kopter.yaml", "https://", "ftp://x/y"],
    ),
}


def _template(*args: str) -> dict[str, Any]:
    result = CliRunner().invoke(cli, ["deploy", "template", "--format", "json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return _template()


def _accepts(setting: Any, value: Any) -> bool:
    try:
        load({setting.variable: str(value)})
    except ConfigError:
        return False
    return True


def _lint_parameters(template: dict[str, Any], defaults: dict[str, Any]) -> set[str]:
    """The parameters cfn-lint finds a Default of refused by (CloudFormation's constraints)."""
    parameters = copy.deepcopy(template["Parameters"])
    for name, value in defaults.items():
        parameters[name]["Default"] = value
    small = {
        "Parameters": parameters,
        "Resources": {"Queue": {"Type": "AWS::SQS::Queue", "Properties": {}}},
    }
    return {
        match.path[1]
        for match in lint(json.dumps(small), regions=["us-east-1"])
        if match.rule.id == "E2015"
    }


def test_cfn_lint_finds_nothing(template):
    matches = lint(json.dumps(template), regions=["us-east-1"])
    assert [f"{m.rule.id} {m.path}: {m.message}" for m in matches] == []


def test_checkov_fails_exactly_what_the_template_skips_with_its_reason(template, tmp_path):
    assert CHECKOV.exists(), MISSING
    # Every conditional resource in: checkov reads conditions with the parameters' defaults.
    every = copy.deepcopy(template)
    for name, value in {
        "Front": "apigateway",
        "TableBillingMode": "PROVISIONED",
        "FlowerAllowedCidr": "10.0.0.0/8",
        "AlarmEmail": "ops@example.com",
    }.items():
        every["Parameters"][name]["Default"] = value
    skipped = {}
    for name, resource in every["Resources"].items():
        for skip in resource.pop("Metadata", {}).get("checkov", {}).get("skip", []):
            skipped[(skip["id"], name)] = skip["comment"]
    assert all(len(reason) > 20 for reason in skipped.values()), skipped
    path = tmp_path / "kopter.json"
    path.write_text(json.dumps(every))
    scan = subprocess.run(
        [CHECKOV, "--skip-download", "--framework", "cloudformation", "-f", path, "-o", "json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    results = json.loads(scan.stdout)["results"]
    failed = {(c["check_id"], c["resource"].split(".")[-1]) for c in results["failed_checks"]}
    assert results["passed_checks"], "checkov checked nothing"
    assert failed == set(skipped), {
        "failed, not skipped": sorted(failed - set(skipped)),
        "skipped, not failed": sorted(set(skipped) - failed),
    }


def test_each_setting_parameter_has_kopters_default_and_its_bounds(template):
    defaults = load({})
    for setting in SETTINGS:
        spec = template["Parameters"][setting.name]
        assert spec["Description"].startswith(setting.variable)
        value = getattr(defaults, setting.field)
        expected = ",".join(value) if isinstance(value, tuple) else value
        assert str(spec["Default"]) == str(expected if expected is not None else ""), setting
        if setting.pattern:
            good, bad = STRINGS[setting.name]
            assert all(_accepts(setting, v) for v in good), setting.name
            assert not any(_accepts(setting, v) for v in bad), setting.name
            continue
        low, high = spec["MinValue"], spec.get("MaxValue")
        step = 1 if isinstance(expected, int) else Decimal("0.01")
        assert _accepts(setting, low) and not _accepts(setting, low - step), setting.name
        if high is not None:
            assert _accepts(setting, high) and not _accepts(setting, high + 1), setting.name
    assert {s.name for s in SETTINGS if s.pattern} == set(STRINGS)


def test_cloudformation_refuses_what_the_settings_refuse(template):
    parameters = template["Parameters"]
    numbers = [s.name for s in SETTINGS if not s.pattern]
    # cfn-lint leaves a MinValue of 0 unchecked (`if min_value:`); CloudFormation does not.
    below = {n: parameters[n]["MinValue"] - 1 for n in numbers if parameters[n]["MinValue"] > 0}
    above = {n: parameters[n]["MaxValue"] + 1 for n in numbers if "MaxValue" in parameters[n]}
    # And what the stack alone decides: a stop within Fargate's and the worker's bounds, a front
    # it knows.
    own = {"WorkerStopTimeout": 121, "Front": "nlb"}
    refused = [{n: bad[i] for n, (_, bad) in STRINGS.items() if i < len(bad)} for i in range(3)]
    for values in (
        {**below, **refused[0], "WorkerStopTimeout": 14},
        {**above, **refused[1]},
        {**own, **refused[2]},
    ):
        assert _lint_parameters(template, values) == set(values), values
    accepted = {n: good[-1] for n, (good, _) in STRINGS.items()}
    assert _lint_parameters(template, accepted) == set()


def test_worker_groups_cover_every_queue_once_within_the_metric_limit():
    assert groups.parse([]) == groups.DEFAULT_GROUPS
    custom = groups.parse(
        [
            "fast=ingest,notifications",
            "slow=describer,pricing,aggregator,audit",
            "snap=backup,deliveries",
        ]
    )
    assert [g.queues for g in custom] == [
        ("ingest", "notifications"),
        ("describer", "pricing", "aggregator", "audit"),
        ("backup", "deliveries"),
    ]
    for specs, message in (
        (
            [
                "all=ingest,describer,aggregator,pricing,audit",
                "b=backup,notifications,deliveries",
            ],
            "at most ten",
        ),
        (["a=ingest", "b=ingest,describer"], "in two worker groups: ingest"),
        (["a=ingest,describer"], "no worker group consumes aggregator"),
        (["a=ingest,raw"], "not kopter's work queues: raw"),
        (["Bad=ingest"], "NAME=QUEUE"),
    ):
        with pytest.raises(Refused, match=message):
            groups.parse(specs)
    # A template per layout: one service, scaling policy and role per group.
    made = _template(
        "--workers",
        "fast=ingest,notifications",
        "--workers",
        "slow=describer,pricing,aggregator,audit",
        "--workers",
        "snap=backup,deliveries",
    )
    services = sorted(n for n, r in made["Resources"].items() if r["Type"] == "AWS::ECS::Service")
    assert services == [
        "ApiService",
        "BeatService",
        "FlowerService",
        "WorkerFastService",
        "WorkerSlowService",
        "WorkerSnapService",
    ]


def test_the_backlog_per_task_is_one_metric_math_expression_within_the_limit(template):
    # The metrics it reads, per queue, are read back from a deployed stack in
    # tests/test_deploy_template.py.
    policy = template["Resources"]["WorkerRealtimeScalingPolicy"]["Properties"]
    metrics = policy["TargetTrackingScalingPolicyConfiguration"]["CustomizedMetricSpecification"]
    [expression] = [q for q in metrics["Metrics"] if q.get("ReturnData")]
    backlog = "v0+f0+v1+f1+v2+f2"
    assert expression["Expression"] == f"IF(tasks > 0, ({backlog}) / tasks, {backlog})"
    assert len(metrics["Metrics"]) == 8 <= 10  # Application Auto Scaling's limit


def test_tasks_follow_the_backlog_target():
    # Four processes a task, two seconds a message: 10 in flight at 5/s.
    assert scaling.tasks(5, 2, 4, target=120, least=1, most=10) == 3  # full tasks
    assert scaling.tasks(5, 2, 4, target=2, least=1, most=10) == 5  # 2 a task
    assert scaling.tasks(0, 2, 4, target=120, least=2, most=10) == 2  # the least
    assert scaling.tasks(50, 2, 4, target=120, least=1, most=10) == 10  # the most
    assert scaling.backlog_target(4, 2, 60) == 120  # waits a minute when every task is full


def test_docs_show_the_policys_own_numbers():
    docs = (ROOT / "docs" / "deploying.md").read_text()
    assert scaling.table(groups.DEFAULT_GROUPS) in docs
