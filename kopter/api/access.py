"""The outermost middleware: a request id on every response, one JSON access-log line per
request, and a plain 500 for the unexpected.

The id is the gateway's ``requestId`` header when it has a sane form, else a new one. The log line
never holds a header (the Authorization token, the gateway secret) nor a cursor: only the
query parameters in SHOWN keep their values.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from urllib.parse import parse_qsl

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID_HEADER = "requestId"
REQUEST_ID = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
# The filters: never `cursor`, nor a parameter the API does not know.
SHOWN = frozenset(
    [
        "since",
        "until",
        "account",
        "event_name",
        "event_source",
        "user",
        "errors",
        "unread",
        "by",
        "limit",
    ]
)

access_log = logging.getLogger("kopter.api.access")
error_log = logging.getLogger("kopter.api")


class RequestContext:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = Headers(scope=scope).get(REQUEST_ID_HEADER, "")
        request_id = given if REQUEST_ID.fullmatch(given) else str(uuid.uuid4())
        state = scope.setdefault("state", {})
        status, started = 500, False
        began = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status, started = message["status"], True
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            error_log.exception("unexpected error", extra={"fields": {"request_id": request_id}})
            if started:
                raise
            reply = JSONResponse(
                {"message": "internal error"}, 500, headers={REQUEST_ID_HEADER: request_id}
            )
            await reply(scope, receive, send)
        finally:
            query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), True)
            fields = {
                "request_id": request_id,
                "method": scope["method"],
                "path": scope["path"],
                "query": {k: v if k in SHOWN else "(not shown)" for k, v in query},
                "status": status,
                "ms": round((time.perf_counter() - began) * 1000, 1),
                "tenant_id": state.get("tenant_id"),
                "client": (scope.get("client") or ("", 0))[0],
            }
            access_log.info(
                "%s %s %s", scope["method"], scope["path"], status, extra={"fields": fields}
            )
