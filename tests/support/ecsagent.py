"""The ECS container agent's task scale-in protection endpoint, played on 127.0.0.1 for tests.

No ECS agent runs off ECS, so the tests serve what AWS documents it to answer (the Fargate user
guide's "Task scale-in protection endpoint", and the agent's handlers in aws/amazon-ecs-agent,
ecs-agent/tmds/handlers/taskprotection/v1): each task's containers get ``ECS_AGENT_URI`` =
``http://127.0.0.1:PORT/api/<endpoint id>``; ``PUT …/task-protection/v1/state`` decodes the body
strictly (unknown fields, wrong types: 400 InvalidParameterException), requires
``ProtectionEnabled`` (400), takes ``ExpiresInMinutes`` from 1 to 2,880 (ECS's 400 otherwise) and
defaults it to 120; success is 200 with ``{"protection": {"ExpirationDate", "ProtectionEnabled",
"TaskArn"}}`` (no date when off); an unknown endpoint id is 404 ResourceNotFoundException; ``GET``
answers the current protection, which lapses at its expiration. ``deny`` answers as the agent
does when ECS refuses the task role (400 AccessDeniedException, with ECS's request id).

Every call is recorded with the time it was answered, the state it left, and the ECS API call
the agent made for it with the task role (``ecs_calls``: what the role's policy must allow).
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.support.proxy import LocalServer

PATH = "/task-protection/v1/state"
DEFAULT_MINUTES = 120
MOST_MINUTES = 2880
CLUSTER = "kopter-test"


@dataclass(frozen=True)
class Call:
    at: float  # time.time() when the agent answered
    task: str  # the task's name in the test
    method: str
    body: Any  # the decoded JSON body, or the raw text when it is not JSON
    status: int
    answer: dict[str, Any]
    expires: float | None  # the protection's expiration after the call (None: off)
    ecs_action: str | None  # the ECS API call the agent made for it, if any

    @property
    def enabled(self) -> bool | None:
        """What a successful PUT set; None for a refused call or a GET."""
        if self.method != "PUT" or self.status != 200:
            return None
        return bool(self.answer["protection"]["ProtectionEnabled"])


@dataclass
class _Task:
    name: str
    arn: str
    expires: float | None = None


def _iso(moment: float | None) -> str | None:
    if moment is None:
        return None
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class EcsAgent(LocalServer):
    def __init__(self, account: str, region: str = "us-east-1", deny: bool = False) -> None:
        self.account = account
        self.region = region
        self.deny = deny
        self.calls: list[Call] = []
        self._tasks: dict[str, _Task] = {}  # endpoint id -> task
        self._lock = threading.Lock()
        agent = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                agent._handle(self, "GET")

            def do_PUT(self) -> None:
                agent._handle(self, "PUT")

            def log_message(self, *_: object) -> None:
                pass

        self._serve(Handler)

    def endpoint(self, name: str) -> str:
        """A new task named ``name``: the ``ECS_AGENT_URI`` its containers get."""
        endpoint_id = secrets.token_hex(16)
        task_id = secrets.token_hex(16)
        arn = f"arn:aws:ecs:{self.region}:{self.account}:task/{CLUSTER}/{task_id}"
        with self._lock:
            self._tasks[endpoint_id] = _Task(name, arn)
        return f"{self.url}/api/{endpoint_id}"

    def arn(self, name: str) -> str:
        return next(t.arn for t in self._tasks.values() if t.name == name)

    def protected(self, name: str) -> bool:
        """What ECS's GetTaskProtection says of the task now: what its service scheduler reads."""
        with self._lock:
            task = next(t for t in self._tasks.values() if t.name == name)
            return task.expires is not None and task.expires > time.time()

    def of(self, name: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.task == name]

    def ecs_calls(self) -> list[tuple[str, str]]:
        """(action, task ARN) of each ECS API call the agent made with the task role."""
        with self._lock:
            return [
                (c.ecs_action, self.arn(c.task)) for c in self.calls if c.ecs_action is not None
            ]

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        prefix, _, rest = handler.path.partition("/api/")
        endpoint_id, _, path = rest.partition("/")
        raw = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        with self._lock:
            task = self._tasks.get(endpoint_id)
            if prefix or "/" + path != PATH or task is None:
                status, answer = 404, _error("", "ResourceNotFoundException", _NOT_FOUND)
                self._record(endpoint_id, method, raw, status, answer, None, None)
            elif method == "GET":
                status, answer = self._answer(task, _ECS_GET, None)
                self._record(task.name, method, raw, status, answer, task.expires, _ECS_GET)
            else:
                status, answer, called = self._put(task, raw)
                self._record(task.name, method, raw, status, answer, task.expires, called)
        payload = json.dumps(answer).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)

    def _put(self, task: _Task, raw: bytes) -> tuple[int, dict[str, Any], str | None]:
        request = _decode(raw)
        if request is None:
            return 400, _error("", "InvalidParameterException", _UNDECODABLE), None
        enabled, minutes = request
        if enabled is None:
            return 400, _error(task.arn, "InvalidParameterException", _NO_FIELD), None
        if enabled and minutes is not None and not 1 <= minutes <= MOST_MINUTES:
            message = f"expiresInMinutes must be between 1 and {MOST_MINUTES}"
            return 400, _error(task.arn, "InvalidParameterException", message, True), _ECS_PUT
        if self.deny:
            return 400, self._denied(task, "ecs:UpdateTaskProtection"), _ECS_PUT
        now = time.time()
        task.expires = now + 60 * (minutes or DEFAULT_MINUTES) if enabled else None
        status, answer = self._answer(task, _ECS_PUT, now)
        return status, answer, _ECS_PUT

    def _answer(self, task: _Task, action: str, now: float | None) -> tuple[int, dict[str, Any]]:
        if self.deny:
            return 400, self._denied(task, action)
        if task.expires is not None and task.expires <= (now or time.time()):
            task.expires = None  # lapsed: ECS set it false
        protection = {
            "ExpirationDate": _iso(task.expires),
            "ProtectionEnabled": task.expires is not None,
            "TaskArn": task.arn,
        }
        return 200, {"protection": protection}

    def _denied(self, task: _Task, action: str) -> dict[str, Any]:
        role = f"arn:aws:sts::{self.account}:assumed-role/kopter-worker/{task.arn[-32:]}"
        message = (
            f"User: {role} is not authorized to perform: {action} on resource: {task.arn} "
            f"because no identity-based policy allows the {action} action"
        )
        return _error(task.arn, "AccessDeniedException", message, True)

    def _record(
        self,
        task: str,
        method: str,
        raw: bytes,
        status: int,
        answer: dict[str, Any],
        expires: float | None,
        ecs_action: str | None,
    ) -> None:
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        self.calls.append(
            Call(time.time(), task, method, body, status, answer, expires, ecs_action)
        )


_ECS_GET = "ecs:GetTaskProtection"
_ECS_PUT = "ecs:UpdateTaskProtection"
_NOT_FOUND = "Failed to find a task for the request"
_UNDECODABLE = "UpdateTaskProtection: failed to decode request"
_NO_FIELD = "Invalid request: does not contain 'ProtectionEnabled' field"
_FIELDS = {"protectionenabled": "ProtectionEnabled", "expiresinminutes": "ExpiresInMinutes"}


def _error(arn: str, code: str, message: str, from_ecs: bool = False) -> dict[str, Any]:
    error = (
        {"Arn": arn, "Code": code, "Message": message}
        if arn
        else {"Code": code, "Message": message}
    )
    answer: dict[str, Any] = {"error": error}
    if from_ecs:
        answer["requestID"] = secrets.token_hex(16)
    return answer


def _decode(raw: bytes) -> tuple[bool | None, int | None] | None:
    """The agent's strict decoding (Go's encoding/json with DisallowUnknownFields: field names
    match whatever their case), or None where it answers "failed to decode request"."""
    try:
        body = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    fields: dict[str, Any] = {}
    for key, value in body.items():
        name = _FIELDS.get(key.lower())
        if name is None:
            return None
        fields[name] = value
    enabled = fields.get("ProtectionEnabled")
    minutes = fields.get("ExpiresInMinutes")
    if enabled is not None and not isinstance(enabled, bool):
        return None
    if minutes is not None and (isinstance(minutes, bool) or not isinstance(minutes, int)):
        return None
    return enabled, minutes
