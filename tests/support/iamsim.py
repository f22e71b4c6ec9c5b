"""IAM decisions from @cloud-copilot/iam-simulate (run by node, from tests/iam/), and the
CloudFormation a template means for given parameters (its intrinsic functions resolved), so the
tests evaluate the policy the template really creates.

Why this evaluator: moto's IAM enforcement ignores ``sts:ExternalId``, ``s3:prefix`` and
``aws:ResourceTag`` (it let an AssumeRole without ExternalId through), and its CloudFormation drops
bucket policies, trails and notifications; iam-simulate implements every condition operator,
policy variables, resource policies and cross-account trust."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import Any

from tests.support.samples import ROOT

IAM_DIR = ROOT / "tests" / "iam"
ALLOWED = "Allowed"
DENIED = "ImplicitlyDenied"  # no statement allows it; any other answer is no denial


@dataclass(frozen=True)
class Authorization:
    """One request as IAM authorizes it: who, which action on which resource, and the request's
    context keys."""

    principal: str
    action: str
    resource: str
    account: str  # the resource's account
    context: dict[str, Any] = field(default_factory=dict)
    what: str = ""  # what kopter (or a test) did, for failure messages

    def __str__(self) -> str:
        context = json.dumps(self.context, sort_keys=True) if self.context else ""
        return f"{self.action} {self.resource} {context} ({self.what})".replace(" ()", "")


@dataclass(frozen=True)
class Decision:
    decision: str
    allowed_by: tuple[str, ...]  # the Sids of the statements that allowed it
    errors: Any = None

    @property
    def allowed(self) -> bool:
        return self.decision == ALLOWED

    @property
    def denied(self) -> bool:
        """Denied for want of an Allow, not for an error of the evaluator's."""
        return self.decision == DENIED


def evaluate(
    requests: list[Authorization],
    identity_policies: list[dict[str, Any]],
    resource_policy: dict[str, Any] | None = None,
    unsafe: bool = False,
) -> list[Decision]:
    """Each request evaluated against the principal's policies (and the resource's). ``unsafe``
    skips iam-simulate's input validation, which drops context keys it does not know for the
    action (the Cognito identity of the browser's policy)."""
    node = shutil.which("node")
    assert node, "node is missing: the IAM evaluator runs on Node 20"
    assert (IAM_DIR / "node_modules" / "@cloud-copilot" / "iam-simulate").is_dir(), (
        "the IAM evaluator is not installed: `npm ci --prefix tests/iam` (make test does it)"
    )
    cases = [
        {
            "simulation": {
                "request": {
                    "principal": r.principal,
                    "action": r.action,
                    "resource": {"resource": r.resource, "accountId": r.account},
                    "contextVariables": r.context,
                },
                "identityPolicies": [
                    {"name": f"policy{i}", "policy": p} for i, p in enumerate(identity_policies)
                ],
                "serviceControlPolicies": [],
                "resourceControlPolicies": [],
                **({"resourcePolicy": resource_policy} if resource_policy else {}),
            },
            "unsafe": unsafe,
        }
        for r in requests
    ]
    out = subprocess.run(
        [node, str(IAM_DIR / "evaluate.cjs")],
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        check=True,
        cwd=IAM_DIR,
        timeout=300,
    )
    return [
        Decision(d["decision"], tuple(d["allowedBy"]), d["errors"]) for d in json.loads(out.stdout)
    ]


def not_denied(
    requests: list[Authorization],
    identity_policies: list[dict[str, Any]],
    resource_policy: dict[str, Any] | None = None,
) -> list[str]:
    """Each request IAM does not refuse, with its answer: allowed, or not evaluated at all (an
    error of the evaluator's is no refusal)."""
    decisions = evaluate(requests, identity_policies, resource_policy)
    return [
        f"{r} -> {d.decision} {d.errors or ''}".rstrip()
        for r, d in zip(requests, decisions, strict=True)
        if not d.denied
    ]


def unneeded_statements(requests: list[Authorization], policy: dict[str, Any]) -> list[str]:
    """The Sids of ``policy``'s statements that none of ``requests`` needs: without such a
    statement every request is still allowed. Each statement is taken out alone."""
    unneeded = []
    for sid in sorted({statement["Sid"] for statement in policy["Statement"]}):
        fewer = {**policy, "Statement": [s for s in policy["Statement"] if s["Sid"] != sid]}
        if all(d.allowed for d in evaluate(requests, [fewer])):
            unneeded.append(sid)
    return unneeded


# --- CloudFormation, resolved ----------------------------------------------------------------

NO_VALUE = object()


def resolve(
    template: dict[str, Any], parameters: dict[str, str], account: str, region: str
) -> dict[str, Any]:
    """The template's resources as CloudFormation would create them with these parameters (the
    defaults filling in those not given): conditions decided, intrinsic functions evaluated,
    resources whose condition is false left out."""
    values = {name: spec.get("Default", "") for name, spec in template["Parameters"].items()}
    values |= parameters
    values |= {
        "AWS::AccountId": account,
        "AWS::Region": region,
        "AWS::Partition": "aws",
        "AWS::StackName": "kopter",
        "AWS::URLSuffix": "amazonaws.com",
    }
    for name, resource in template["Resources"].items():
        # A resource's Ref is its physical name, which these templates always give.
        properties = resource.get("Properties", {})
        named = [properties[k] for k in ("BucketName", "RoleName", "TrailName") if k in properties]
        values[name] = _eval(named[0], values, {}) if named else name
    conditions: dict[str, bool] = {}
    for name, expression in template.get("Conditions", {}).items():
        conditions[name] = bool(_eval(expression, values, conditions))
    resources = {}
    for name, resource in template["Resources"].items():
        if "Condition" in resource and not conditions[resource["Condition"]]:
            continue
        resources[name] = _eval(resource, values, conditions)
    return resources


def _eval(node: Any, values: dict[str, Any], conditions: dict[str, bool]) -> Any:
    if isinstance(node, list):
        items = [_eval(n, values, conditions) for n in node]
        return [i for i in items if i is not NO_VALUE]
    if not isinstance(node, dict):
        return node
    if len(node) == 1:
        [(key, arg)] = node.items()
        if key == "Ref":
            return NO_VALUE if arg == "AWS::NoValue" else values[arg]
        if key == "Fn::If":
            name, then, otherwise = arg
            return _eval(then if conditions[name] else otherwise, values, conditions)
        if key == "Fn::Equals":
            left, right = (_eval(a, values, conditions) for a in arg)
            return left == right
        if key == "Fn::Not":
            return not _eval(arg[0], values, conditions)
        if key == "Fn::Sub":
            text, variables = (arg, {}) if isinstance(arg, str) else arg
            scope = values | {k: _eval(v, values, conditions) for k, v in variables.items()}
            return re.sub(r"\$\{([\w:]+)\}", lambda m: str(scope[m.group(1)]), text)
        if key == "Condition":
            return conditions[arg]
        if key.startswith("Fn::"):
            raise AssertionError(f"the resolver does not know {key}")
    resolved = {k: _eval(v, values, conditions) for k, v in node.items()}
    return {k: v for k, v in resolved.items() if v is not NO_VALUE}
