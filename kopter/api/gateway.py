"""The read API's OpenAPI document for API Gateway (`kopter api openapi --api-gateway`).

API Gateway (a REST API) imports OpenAPI 3.0 with ``x-amazon-apigateway-integration`` on every
operation. Each route becomes an HTTP proxy to `kopter api` in ``gateway`` mode that adds what
kopter trusts: the caller's Cognito identity id (IAM authorization with the identity pool's
credentials, as the original web app signed its calls) in ``identityId``, API Gateway's request
id in ``requestId``, and the gateway secret from a stage variable, so the document itself holds
no secret. Every path also answers the CORS preflight itself, through a mock integration.

Given a Cognito user pool instead, API Gateway's own authorizer checks the caller's token (the
web app's ID token, as a bearer token) against the pool, and the token's ``sub`` is passed on
as ``identityId``: the same user the read API would find in ``jwt`` mode.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

from kopter.api import identity
from kopter.api.access import REQUEST_ID_HEADER
from kopter.api.app import PUBLIC, create_app
from kopter.settings import Settings

BACKEND_STAGE_VARIABLE = "kopterApiUrl"
SECRET_STAGE_VARIABLE = "kopterGatewaySecret"
SIGV4 = {
    "sigv4": {
        "type": "apiKey",
        "name": "Authorization",
        "in": "header",
        "x-amazon-apigateway-authtype": "awsSigv4",
    }
}
PLACEHOLDER = "x" * 32  # builds the app for its routes only; it never serves a request


def cognito(user_pool_arn: str) -> dict[str, Any]:
    return {
        "cognito": {
            "type": "apiKey",
            "name": "Authorization",
            "in": "header",
            "x-amazon-apigateway-authtype": "cognito_user_pools",
            "x-amazon-apigateway-authorizer": {
                "type": "cognito_user_pools",
                "providerARNs": [user_pool_arn],
            },
        }
    }


def plain(settings: Settings) -> dict[str, Any]:
    """The document `kopter api` serves at /openapi.json with these settings."""
    return create_app(settings).openapi()


def document(
    settings: Settings, backend_url: str | None = None, user_pool_arn: str | None = None
) -> dict[str, Any]:
    as_gateway = dataclasses.replace(
        settings,
        api_auth="gateway",
        api_gateway_secret=PLACEHOLDER,
        api_cursor_key=settings.api_cursor_key or PLACEHOLDER,
    )
    doc = _openapi_30(copy.deepcopy(create_app(as_gateway).openapi()))
    backend = (backend_url or f"${{stageVariables.{BACKEND_STAGE_VARIABLE}}}").rstrip("/")
    if user_pool_arn:
        schemes, identity_source = cognito(user_pool_arn), "context.authorizer.claims.sub"
    else:
        schemes, identity_source = SIGV4, "context.identity.cognitoIdentityId"
    doc["components"]["securitySchemes"] = schemes
    [scheme] = schemes
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            if path in PUBLIC:
                operation.pop("security", None)
            else:
                operation["security"] = [{scheme: []}]
            operation["x-amazon-apigateway-integration"] = _proxy(
                method, backend + path, path, identity_source
            )
        operations["options"] = _preflight(settings, path)
    doc["x-amazon-apigateway-api-key-source"] = "HEADER"
    return doc


def _proxy(method: str, uri: str, path: str, identity_source: str) -> dict[str, Any]:
    parameters = {
        f"integration.request.header.{identity.IDENTITY_HEADER}": identity_source,
        f"integration.request.header.{REQUEST_ID_HEADER}": "context.requestId",
        f"integration.request.header.{identity.SECRET_HEADER}": (
            f"stageVariables.{SECRET_STAGE_VARIABLE}"
        ),
    }
    for name in _path_parameters(path):
        parameters[f"integration.request.path.{name}"] = f"method.request.path.{name}"
    return {
        "type": "http_proxy",
        "httpMethod": method.upper(),
        "uri": uri,
        "passthroughBehavior": "when_no_match",
        "connectionType": "INTERNET",
        "requestParameters": parameters,
        "timeoutInMillis": 29000,
    }


def _path_parameters(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{")]


def _preflight(settings: Settings, path: str) -> dict[str, Any]:
    # A mock integration answers with static values: one origin (the first configured).
    origin = (settings.api_cors_origins or ("*",))[0]
    allowed = {
        "Access-Control-Allow-Origin": f"'{origin}'",
        "Access-Control-Allow-Methods": f"'{','.join([*settings.api_cors_methods, 'OPTIONS'])}'",
        "Access-Control-Allow-Headers": f"'{','.join(settings.api_cors_headers)}'",
        "Access-Control-Max-Age": "'600'",
    }
    return {
        "summary": "CORS preflight, answered by API Gateway",
        "tags": ["cors"],
        "parameters": [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in _path_parameters(path)
        ],
        "responses": {
            "200": {
                "description": "What browsers may send.",
                "headers": {name: {"schema": {"type": "string"}} for name in allowed},
            }
        },
        "x-amazon-apigateway-integration": {
            "type": "mock",
            "requestTemplates": {"application/json": '{"statusCode": 200}'},
            "passthroughBehavior": "when_no_match",
            "responses": {
                "default": {
                    "statusCode": "200",
                    "responseParameters": {
                        f"method.response.header.{name}": value for name, value in allowed.items()
                    },
                }
            },
        },
    }


def _openapi_30(doc: dict[str, Any]) -> dict[str, Any]:
    """FastAPI writes OpenAPI 3.1; API Gateway imports 3.0: ``anyOf [X, null]`` becomes X with
    ``nullable``, the only 3.1 form kopter's schemas use."""
    doc["openapi"] = "3.0.1"
    return _nullable(doc)


def _nullable(node: Any) -> Any:
    if isinstance(node, list):
        return [_nullable(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _nullable(value) for key, value in node.items()}
    options = node.get("anyOf")
    if isinstance(options, list) and {"type": "null"} in options:
        rest = [o for o in options if o != {"type": "null"}]
        del node["anyOf"]
        if len(rest) == 1:
            node.update(rest[0])
        else:
            node["anyOf"] = rest
        node["nullable"] = True
    return node
