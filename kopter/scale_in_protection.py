"""ECS task scale-in protection: a worker busy with tasks is not the one a scale-in removes.

ECS tells every container of a task where its agent listens (``ECS_AGENT_URI``). A PUT of
``{"ProtectionEnabled": true, "ExpiresInMinutes": N}`` to ``$ECS_AGENT_URI/task-protection/v1/
state`` has the agent call ECS's UpdateTaskProtection for the task, with the task role's
credentials (so the role needs ``ecs:UpdateTaskProtection``); ECS's service scheduler then stops
only unprotected tasks when it scales the service in or deploys, and the protection lapses by
itself N minutes later. ``ScaleInProtection`` decides when to call; tasks/protection.py feeds it
from the worker:

- A worker protects itself when it takes a message and is not yet protected for as long as that
  task may run: before the task starts, so no task runs unprotected.
- A task may run until its start plus its hard time limit; it is protected ``MARGIN`` beyond
  that, and each call asks ``MARGIN`` more again, so a worker whose tasks keep coming calls at
  most once a ``MARGIN``, not once a task.
- A task held past its time limit plus the margin keeps no protection: Celery should have ended
  it, and a worker stuck on it must not stay protected. A worker stuck as a whole cannot renew,
  and its protection lapses a time limit and two margins after its last call.
- Holding nothing for ``idle_grace`` seconds, it turns protection off, so a scale-in can take it.
- Told to stop (SIGTERM), it turns protection off and asks for none again: ECS sends SIGTERM to
  a task it is stopping whatever the protection (a scale-in or deploy takes only unprotected
  tasks; StopTask, Spot and maintenance ignore protection), and what the worker still runs either
  ends or goes back to SQS before SIGKILL (tasks/shutdown.py). A stopping task left protected
  would only count against the service's protected tasks (ECS refuses protection, with
  DEPLOYMENT_BLOCKED, to more tasks than the service's desired count).
- A failed call (the agent unreachable or refusing, ECS refusing: no permission, throttled,
  DEPLOYMENT_BLOCKED) is a log line and never fails a task; the next call waits ``RETRY_AFTER``.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol
from urllib.parse import urlsplit

import urllib3

from kopter.errors import ConfigError

log = logging.getLogger(__name__)

PATH = "/task-protection/v1/state"
# ECS takes 1 to 2,880 minutes (48 hours).
MOST_MINUTES = 2880
# Protection beyond a task's time limit (Celery's hard limit ends the task, then acknowledges it),
# and the least time between two renewals of a busy worker.
MARGIN = 60.0
# After a failed call: an agent that hangs costs the worker's event loop one timeout a minute.
RETRY_AFTER = 60.0
# The agent gives up on ECS after 4 s and answers (RequestCanceled): a little longer here.
AGENT_TIMEOUT = 5.0


class AgentError(Exception):
    """The agent did not set the protection asked for: the reason, in one line."""


class ProtectionAgent(Protocol):
    def put(self, enabled: bool, minutes: int | None = None) -> None: ...


def agent_uri(env: Mapping[str, str]) -> str | None:
    """The ECS agent's address in a task's containers (not a setting: ECS sets it), or None off
    ECS."""
    raw = env.get("ECS_AGENT_URI") or None
    if raw is not None:
        parts = urlsplit(raw)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"ECS_AGENT_URI={raw!r} is not an http URL")
    return raw


class Agent:
    """The ECS agent's task scale-in protection endpoint, as AWS documents it: a JSON answer
    with ``protection`` when ECS set it, ``failure`` when ECS refused this task (HTTP 200), or
    ``error`` (the agent's or ECS's exception, with its status)."""

    def __init__(self, uri: str, timeout: float = AGENT_TIMEOUT) -> None:
        self.url = uri.rstrip("/") + PATH
        self._http = urllib3.PoolManager(
            retries=False, timeout=urllib3.Timeout(connect=timeout, read=timeout)
        )

    def put(self, enabled: bool, minutes: int | None = None) -> None:
        body: dict[str, Any] = {"ProtectionEnabled": enabled}
        if enabled and minutes is not None:
            body["ExpiresInMinutes"] = minutes
        try:
            response = self._http.request(
                "PUT",
                self.url,
                body=json.dumps(body).encode(),
                headers={"Content-Type": "application/json"},
                redirect=False,
            )
        except urllib3.exceptions.HTTPError as e:
            raise AgentError(f"the ECS agent at {self.url} does not answer: {e}") from None
        try:
            answer = json.loads(response.data)
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            text = response.data[:200].decode(errors="replace")
            raise AgentError(f"the ECS agent answered HTTP {response.status}: {text!r}")
        protection = answer.get("protection") or {}
        if response.status == 200 and protection.get("ProtectionEnabled") is enabled:
            return
        if answer.get("failure"):
            failure = answer["failure"]
            raise AgentError(f"ECS refused: {failure.get('Reason')} {failure.get('Detail') or ''}")
        if answer.get("error"):
            error = answer["error"]
            raise AgentError(
                f"HTTP {response.status} {error.get('Code')}: {error.get('Message')} "
                f"(request {answer.get('requestID') or 'none'})"
            )
        raise AgentError(f"the ECS agent answered HTTP {response.status}: {answer}")


def minutes_for(seconds: float) -> int:
    """Whole minutes covering ``seconds``, within what ECS takes."""
    return max(1, min(MOST_MINUTES, math.ceil(seconds / 60)))


class ScaleInProtection:
    """When a worker asks the agent for protection, renews it, and turns it off. Called from the
    worker's event loop (``taken``), a thread of its own (``tick``) and a signal handler
    (``stop``); the clock is seconds (``time.monotonic``)."""

    def __init__(
        self,
        agent: ProtectionAgent,
        idle_grace: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._agent = agent
        self._idle_grace = idle_grace
        self._clock = clock
        self._lock = threading.Lock()
        self._expires: float | None = None  # when the protection asked for lapses; None: off
        # Since when the worker has been seen holding no task that needs protection.
        self._idle_since: float | None = clock()
        self._retry_at = -math.inf
        # A plain flag: ``stop`` runs in a signal handler, which must not wait for the lock the
        # interrupted thread may hold.
        self._stopping = False

    @property
    def protected(self) -> bool:
        return self._expires is not None and self._expires > self._clock()

    def taken(self, time_limit: float) -> None:
        """The worker took a message whose task may run ``time_limit`` seconds; called before
        the task starts."""
        with self._lock:
            now = self._clock()
            self._idle_since = None
            if self._stopping or now < self._retry_at:
                return
            need = time_limit + MARGIN
            if not self._covers(now, need):
                self._protect(now, need)

    def tick(self, held: Iterable[tuple[float, float]]) -> None:
        """Every second or so, with each task the worker holds as (seconds since it started,
        or since it was taken while it waits for a process; its time limit)."""
        with self._lock:
            now = self._clock()
            need = max((limit + MARGIN - age for age, limit in held), default=0.0)
            if self._expires is not None and self._expires <= now:
                self._expires = None  # lapsed: ECS turned it off
            if need > 0:
                self._idle_since = None
            elif self._idle_since is None:
                self._idle_since = now
            if now < self._retry_at:
                return
            idle = self._idle_since is not None and now - self._idle_since >= self._idle_grace
            if self._stopping or idle:
                if self._expires is not None:
                    self._unprotect()
            elif need > 0 and not self._covers(now, need):
                self._protect(now, need)

    def stop(self) -> None:
        """The worker is stopping: the next ``tick`` turns protection off, none is asked again."""
        self._stopping = True

    def _covers(self, now: float, need: float) -> bool:
        return self._expires is not None and self._expires >= now + need

    def _protect(self, now: float, need: float) -> None:
        minutes = minutes_for(need + MARGIN)
        try:
            self._agent.put(True, minutes)
        except AgentError as e:
            self._failed("on", e)
            return
        # From before the call: ECS counts its minutes from when the call reached it, later.
        self._expires = now + 60 * minutes
        log.info("scale-in protection on for %d min", minutes)

    def _unprotect(self) -> None:
        try:
            self._agent.put(False)
        except AgentError as e:
            self._failed("off", e)
            return
        self._expires = None
        log.info("scale-in protection off")

    def _failed(self, what: str, error: AgentError) -> None:
        self._retry_at = self._clock() + RETRY_AFTER
        log.warning(
            "cannot turn scale-in protection %s (again in %.0f s; tasks run regardless): %s",
            what,
            RETRY_AFTER,
            error,
        )
