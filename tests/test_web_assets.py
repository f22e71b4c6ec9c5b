"""The web app's files: the vendored uPlot is byte for byte what web/package-lock.json installs,
the app's money sums are exact, `kopter web build` writes a deployable folder, and `kopter api
openapi --api-gateway` writes a document API Gateway and CloudFormation accept, with IAM or a
Cognito authorizer."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from tests.conftest import OUTPUT, needs
from tests.support.webapp import WEB, node_modules

pytestmark = pytest.mark.unit

VENDORED = {"uPlot.iife.min.js": "dist/uPlot.iife.min.js", "uPlot.min.css": "dist/uPlot.min.css"}
SECRETS = {
    "KOPTER_API_CURSOR_KEY": "c" * 40,
    "KOPTER_API_GATEWAY_SECRET": "g" * 40,
}


@needs("npm")
def test_vendored_uplot_is_the_locked_package():
    modules = node_modules(OUTPUT)
    lock = json.loads((WEB / "package-lock.json").read_text())
    package = json.loads((WEB / "package.json").read_text())
    assert lock["packages"][""]["dependencies"] == package["dependencies"]
    installed = json.loads((modules / "uplot" / "package.json").read_text())
    assert installed["version"] == lock["packages"]["node_modules/uplot"]["version"]
    for vendored, packaged in VENDORED.items():
        assert (WEB / "src" / "vendor" / vendored).read_bytes() == (
            modules / "uplot" / packaged
        ).read_bytes(), vendored
    assert (WEB / "src" / "vendor" / "uPlot.LICENSE").read_bytes() == (
        modules / "uplot" / "LICENSE"
    ).read_bytes()


@needs("node")
def test_money_sums_in_the_app_are_exact():
    rng = random.Random(17)
    cases = []
    for _ in range(200):
        values = [
            f"{rng.choice(['', '-']) if rng.random() < 0.1 else ''}{rng.randrange(10**7)}."
            f"{rng.randrange(10 ** rng.choice([1, 2, 4])):0{rng.choice([2, 4])}d}"
            for _ in range(rng.randrange(1, 800))
        ]
        cases.append(values)
    script = (
        f"import {{ addDecimals, usd }} from '{(WEB / 'src' / 'decimal.js').as_uri()}';"
        "let input = ''; process.stdin.on('data', d => input += d).on('end', () => {"
        "  const cases = JSON.parse(input);"
        "  console.log(JSON.stringify(cases.map(c => [addDecimals(c), usd(addDecimals(c))])));"
        "});"
    )
    result = subprocess.run(
        ["node", "--input-type=module", "-e", script],
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    for values, (total, shown) in zip(cases, json.loads(result.stdout), strict=True):
        exact = sum((Decimal(v) for v in values), Decimal(0))
        assert Decimal(total) == exact
        places = max(2, -int(exact.as_tuple().exponent))
        assert shown == f"{'-' if exact < 0 else ''}${abs(exact):,.{places}f}"
    # Where a float drifts, the app does not: 0.1 + 0.2, and a month of cents.
    assert json.loads(
        subprocess.run(
            ["node", "--input-type=module", "-e", script],
            input=json.dumps([["0.10", "0.20"], ["0.01"] * 744]),
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    ) == [["0.30", "$0.30"], ["7.44", "$7.44"]]


def test_web_build_writes_the_app_and_its_config(kopter, tmp_path):
    target = tmp_path / "site"
    env = {
        "KOPTER_WEB_API_URL": "https://api.example.com",
        "KOPTER_WEB_OIDC_ISSUER": "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_abc",
        "KOPTER_WEB_OIDC_CLIENT_ID": "5abc7client",
        "KOPTER_WEB_OIDC_SCOPES": "openid email",
    }
    result = kopter("web", "build", str(target), env=env)
    sources = sorted(p.relative_to(WEB / "src") for p in (WEB / "src").rglob("*") if p.is_file())
    built = sorted(p.relative_to(target) for p in target.rglob("*") if p.is_file())
    assert built == sorted([*sources, type(sources[0])("config.json")])
    assert f"wrote {len(built)} files" in result.stdout
    assert json.loads((target / "config.json").read_text()) == {
        "api": "https://api.example.com",
        "oidc": {
            "issuer": env["KOPTER_WEB_OIDC_ISSUER"],
            "client_id": "5abc7client",
            "scopes": "openid email",
            "redirect_uri": None,
        },
    }
    again = kopter("web", "build", str(target), ok=False)
    assert "is not empty" in again.stderr
    lone = kopter(
        "web",
        "build",
        str(tmp_path / "other"),
        env={"KOPTER_WEB_OIDC_ISSUER": env["KOPTER_WEB_OIDC_ISSUER"]},
        ok=False,
    )
    assert "set KOPTER_WEB_OIDC_CLIENT_ID too" in lone.stderr


def test_openapi_for_api_gateway_validates_and_lints(kopter, tmp_path):
    from openapi_spec_validator import validate

    out = tmp_path / "gateway.json"
    env = {**SECRETS, "KOPTER_API_CORS_ORIGINS": "https://app.example.com"}
    kopter("api", "openapi", "--api-gateway", "-o", str(out), env=env)
    doc = json.loads(out.read_text())
    validate(doc)  # as OpenAPI 3.0, which API Gateway imports
    assert doc["openapi"] == "3.0.1"
    assert "g" * 40 not in out.read_text()  # the secret is a stage variable, not in the document
    for path, operations in doc["paths"].items():
        assert (
            "options" in operations
            and {"get", "post", "delete"} >= set(operations) - {"options"} != set()
        )
        for method, operation in operations.items():
            integration = operation["x-amazon-apigateway-integration"]
            if method == "options":
                assert integration["type"] == "mock"
                headers = integration["responses"]["default"]["responseParameters"]
                allowed = "method.response.header.Access-Control-Allow-Origin"
                assert headers[allowed] == "'https://app.example.com'"
                continue
            assert integration["type"] == "http_proxy"
            assert integration["httpMethod"] == method.upper()
            assert integration["uri"] == "${stageVariables.kopterApiUrl}" + path
            parameters = integration["requestParameters"]
            assert parameters["integration.request.header.identityId"] == (
                "context.identity.cognitoIdentityId"
            )
            assert parameters["integration.request.header.requestId"] == "context.requestId"
            assert parameters["integration.request.header.x-kopter-gateway-secret"] == (
                "stageVariables.kopterGatewaySecret"
            )
            if "{id}" in path:
                assert parameters["integration.request.path.id"] == "method.request.path.id"
            assert ("security" in operation) == (path != "/healthz")
    assert "nullable" in json.dumps(doc) and '"type": "null"' not in json.dumps(doc)

    # Wrapped in an AWS::ApiGateway::RestApi, cfn-lint passes it; a broken one it does not.
    cfn_lint = str(Path(sys.executable).parent / "cfn-lint")  # installed with moto's server
    template = tmp_path / "api.json"

    def lint(body: object) -> subprocess.CompletedProcess[str]:
        resource = {
            "Type": "AWS::ApiGateway::RestApi",
            "Properties": {"Name": "kopter", "Body": body},
        }
        template.write_text(
            json.dumps({"AWSTemplateFormatVersion": "2010-09-09", "Resources": {"Api": resource}})
        )
        return subprocess.run(
            [cfn_lint, str(template)], capture_output=True, text=True, timeout=120
        )

    linted = lint(doc)
    assert linted.returncode == 0, linted.stdout + linted.stderr
    assert lint(["not", "a", "document"]).returncode != 0

    # Behind a Cognito authorizer instead: the token's sub is the identity passed on.
    pool = "arn:aws:cognito-idp:us-east-1:123456789012:userpool/us-east-1_AbCdEf123"
    cognito = json.loads(
        kopter("api", "openapi", "--api-gateway", "--user-pool-arn", pool, env=SECRETS).stdout
    )
    validate(cognito)
    [(scheme, spec)] = cognito["components"]["securitySchemes"].items()
    assert spec["x-amazon-apigateway-authtype"] == "cognito_user_pools"
    assert spec["x-amazon-apigateway-authorizer"]["providerARNs"] == [pool]
    for path, operations in cognito["paths"].items():
        for method, operation in operations.items():
            if method == "options":
                continue
            assert operation.get("security") == (None if path == "/healthz" else [{scheme: []}])
            parameters = operation["x-amazon-apigateway-integration"]["requestParameters"]
            assert parameters["integration.request.header.identityId"] == (
                "context.authorizer.claims.sub"
            )
    refused = kopter("api", "openapi", "--api-gateway", "--user-pool-arn", "p", ok=False)
    assert refused.stderr.count("\n") == 1 and "not a Cognito user pool's ARN" in refused.stderr

    # Without --api-gateway: the document kopter api serves, as it is configured.
    plain = json.loads(
        kopter("api", "openapi", env={**SECRETS, "KOPTER_API_AUTH": "gateway"}).stdout
    )
    assert plain["openapi"].startswith("3.1")
    assert "x-amazon-apigateway-integration" not in json.dumps(plain)
