"""The read API's ASGI app: routes, identity, cursors, CORS, errors and the OpenAPI document."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import GZipMiddleware

from kopter.api import (
    accounts,
    audit,
    channels,
    costs,
    digests,
    ec2,
    errors,
    identity,
    notifications,
    prices,
    rules,
    snapshots,
    web,
)
from kopter.api.access import REQUEST_ID_HEADER, RequestContext
from kopter.api.cursors import Cursors
from kopter.settings import Settings

PUBLIC = {"/healthz"}  # paths that need no identity
SECURITY_SCHEMES = {
    "gateway": {
        "identityId": {
            "type": "apiKey",
            "in": "header",
            "name": identity.IDENTITY_HEADER,
            "description": "The caller's Cognito identity id, set by API Gateway.",
        },
        "gatewaySecret": {
            "type": "apiKey",
            "in": "header",
            "name": identity.SECRET_HEADER,
            "description": "The secret API Gateway's integration adds: proves it set identityId.",
        },
    },
    "jwt": {
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "A token whose `sub` is the caller's identity id.",
        }
    },
}


class Health(BaseModel):
    status: str


def create_app(settings: Settings) -> FastAPI:
    """The app, or a ConfigError naming the setting that is missing or unsafe."""
    app = FastAPI(
        title="kopter read API",
        version="1",
        description="The audit log and its daily digests, detection rules and findings, EC2 "
        "events, cost graph, snapshots, notifications, their channels and accounts of the "
        "caller's tenant, and the EC2 price list. Errors are "
        '`{"message": …}`; every response carries `requestId`.',
        docs_url=None,
        redoc_url=None,
        generate_unique_id_function=lambda route: route.name,  # operationId: the function
    )
    app.state.settings = settings
    app.state.mode = settings.api_auth
    app.state.identify = identity.from_settings(settings)
    app.state.tenants = identity.KnownTenants(settings.api_tenant_cache_seconds)
    app.state.cursors = Cursors(settings.api_cursor_key)
    errors.install(app)

    @app.get("/healthz", response_model=Health, tags=["health"], summary="Liveness")
    def healthz() -> Health:
        return Health(status="ok")

    routers = (
        audit,
        digests,
        rules,
        ec2,
        costs,
        snapshots,
        prices,
        notifications,
        channels,
        accounts,
    )
    for module in routers:
        app.include_router(module.router)
    web.install(app, settings)  # last: the app's files at / answer what no route does
    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(settings.api_cors_origins),
        allow_methods=list(settings.api_cors_methods),
        allow_headers=list(settings.api_cors_headers),
        expose_headers=[REQUEST_ID_HEADER],
        max_age=600,
    )
    app.add_middleware(GZipMiddleware, minimum_size=1024)  # the app's files, long listings
    app.add_middleware(RequestContext)  # added last: outermost, so it sees every response
    app.openapi = lambda: _document(app, settings)  # type: ignore[method-assign]
    return app


def _document(app: FastAPI, settings: Settings) -> dict[str, Any]:
    """FastAPI's document, made to say what the code does: 400 rather than FastAPI's 422 for a
    bad parameter, the configured identity on every tenant's path, requestId on every response."""
    if app.openapi_schema:
        return app.openapi_schema
    doc = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    schemes = SECURITY_SCHEMES[settings.api_auth or ""]
    components = doc.setdefault("components", {})
    components["securitySchemes"] = schemes
    for name in ("HTTPValidationError", "ValidationError"):
        components.get("schemas", {}).pop(name, None)
    request_id = {
        "description": "The gateway's requestId, or a new id.",
        "schema": {"type": "string"},
    }
    # Keys fetched from the issuer may be out of reach: a 503 rather than refusing the caller.
    fetched_keys = settings.api_auth == "jwt" and settings.api_jwt_jwks_url is not None
    unavailable = {
        "description": errors.DESCRIPTIONS[503],
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    for path, operations in doc["paths"].items():
        for operation in operations.values():
            responses = operation["responses"]
            responses.pop("422", None)
            if path not in PUBLIC:
                operation["security"] = [{name: [] for name in schemes}]
                if fetched_keys:
                    responses["503"] = unavailable
            for response in responses.values():
                response.setdefault("headers", {})[REQUEST_ID_HEADER] = request_id
    app.openapi_schema = doc
    return doc
