"""Errors as the API's contract has them: ``{"message": …}`` with a documented status.

400 a bad parameter or cursor, 401 no or bad identity, 404 not found (also another tenant's
item: a 403 would confirm that it exists), 503 the issuer's keys out of reach (only with
``KOPTER_API_JWT_JWKS_URL``). A 500 is never expected.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

DESCRIPTIONS = {
    400: "A bad parameter or cursor.",
    401: "No identity, or one that is not valid or not a tenant's.",
    404: "Not found (or another tenant's).",
    503: "The identity provider's keys cannot be fetched now: try again later.",
}


class Error(BaseModel):
    message: str


class ApiError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The documented errors of an operation, for its OpenAPI entry."""
    return {code: {"model": Error, "description": DESCRIPTIONS[code]} for code in codes}


def _reply(status: int, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"message": message}, status, headers=headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_: Request, e: ApiError) -> JSONResponse:
        return _reply(e.status, e.message, e.headers)

    @app.exception_handler(RequestValidationError)
    async def bad_parameter(_: Request, e: RequestValidationError) -> JSONResponse:
        first = e.errors()[0]
        where = ".".join(str(part) for part in first["loc"][1:]) or str(first["loc"][0])
        return _reply(400, f"{where}: {first['msg']}")

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, e: HTTPException) -> JSONResponse:
        return _reply(e.status_code, str(e.detail), e.headers)
