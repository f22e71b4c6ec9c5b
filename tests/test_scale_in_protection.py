"""ECS task scale-in protection: a busy worker is never the one a scale-in removes.

No ECS agent runs here, so the test plays it (``tests/support/ecsagent.py``: the documented
endpoint, its state and expiry and answers, every call recorded), and plays ECS's service
scheduler, which scaling in stops only a task whose protection is off. The workers are real
`celery worker`s on moto's SQS, each given the ``ECS_AGENT_URI`` of an ECS task of its own; the
test's tasks record when they start and end.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from kopter.scale_in_protection import MARGIN, RETRY_AFTER, AgentError, ScaleInProtection
from kopter.settings import get_settings
from tasks.app import app
from tests.conftest import TEST_ENV, wait_for
from tests.support.ecsagent import Call, EcsAgent

pytestmark = pytest.mark.long

ACCOUNT = TEST_ENV["KOPTER_AWS_ACCOUNT_ID"]
STOP_TIMEOUT = 30
# The test's tasks carry their hard time limit: the protection a worker asks covers it.
LIMIT = 60
LIMITS: dict[str, Any] = {"time_limit": LIMIT, "soft_time_limit": LIMIT - 5}
MINUTES = math.ceil((LIMIT + 2 * MARGIN) / 60)
# Idle for a whole long poll of SQS, a worker turns its protection off.
GRACE = app.conf.broker_transport_options["wait_time_seconds"]


@pytest.fixture
def r() -> redis.Redis:
    return redis.Redis.from_url(get_settings().redis_url)


def _runs(r: redis.Redis, key: str) -> dict[str, dict[str, Any]]:
    """Each task run recorded in ``key``: its worker, start and end (None while it runs)."""
    runs: dict[str, dict[str, Any]] = {}
    for raw in r.lrange(key, 0, -1):
        stamp = json.loads(raw)
        run = runs.setdefault(stamp["id"], {"host": stamp["host"], "starts": 0, "end": None})
        if stamp["event"] == "start":
            run["starts"] += 1
            run["start"] = stamp["at"]
        else:
            run["end"] = stamp["at"]
    return runs


def _busy(r: redis.Redis, key: str) -> set[str]:
    """The workers running one of the test's tasks now, as the tasks recorded it."""
    return {run["host"] for run in _runs(r, key).values() if run["end"] is None}


def _puts(calls: list[Call]) -> list[Call]:
    return [c for c in calls if c.enabled is not None]


def _covered(calls: list[Call], start: float, end: float) -> bool:
    """The agent's record shows the task protected from ``start`` to ``end``: on before it,
    never off in between, and each protection's expiration reaching the next call or the end."""
    expires = None
    for call in _puts(sorted(calls, key=lambda c: c.at)):
        if call.at <= start:
            expires = call.expires
        elif call.at < end:
            if expires is None or expires < call.at:
                return False
            expires = call.expires
        else:
            break
    return expires is not None and expires >= end


def _exited(child: Any, within: float, what: str) -> None:
    wait_for(lambda: not child.alive, within, what)
    assert child.process.returncode == 0, child.tail(40)


@pytest.mark.timeout(300)
def test_a_scale_in_takes_an_idle_worker_never_a_busy_one(workers, r):
    from tests.support.harness import stamped

    key = f"protect:{secrets.token_hex(4)}"
    release = f"{key}:release"
    with EcsAgent(ACCOUNT) as agent:

        def worker(name: str) -> Any:
            env = {"KOPTER_WORKER_STOP_TIMEOUT": str(STOP_TIMEOUT)}
            env["ECS_AGENT_URI"] = agent.endpoint(name)
            return workers.start(name, "audit", app="tests.support.harness", env=env)

        busy = worker("busy")
        workers.wait_ready(busy)
        assert agent.calls == [], "an idle worker asks for nothing"
        # Two long tasks fill the first worker (two processes, one message each); the second
        # worker starts meanwhile and takes the short tasks that follow.
        holds = [
            stamped.apply_async((key, LIMIT - 10, release), queue="audit", **LIMITS)
            for _ in range(2)
        ]
        idle = worker("idle")
        wait_for(lambda: len(_runs(r, key)) == 2, 60, "the first worker to start both")
        workers.wait_ready(idle)
        shorts = [stamped.apply_async((key, 1), queue="audit", **LIMITS) for _ in range(4)]
        for result in shorts:
            result.get(timeout=60)
        wait_for(
            lambda: _puts(agent.of("idle")) and not agent.protected("idle"),
            GRACE + 20,
            "the second worker, idle, to turn its protection off",
        )

        # ECS's service scheduler scales in by one: it stops a task whose protection is off.
        running = _busy(r, key)
        unprotected = [name for name in ("busy", "idle") if not agent.protected(name)]
        assert running == {"busy"} and unprotected == ["idle"], (running, unprotected)
        scaled_in = time.time()
        os.kill(idle.process.pid, signal.SIGTERM)
        _exited(idle, STOP_TIMEOUT, "the idle worker to exit")

        r.set(release, 1)
        for result in holds:
            result.get(timeout=30)
        wait_for(
            lambda: not agent.protected("busy"), GRACE + 20, "the first worker, idle, unprotected"
        )

        # ECS stops the worker while it runs a task (StopTask, say): its protection goes off at
        # once, though the task still runs; the task ends on it before the stop timeout.
        last_release = f"{key}:release-last"
        last = stamped.apply_async((key, STOP_TIMEOUT, last_release), queue="audit", **LIMITS)
        wait_for(lambda: len(_runs(r, key)) == 7, 30, "the last task to start")
        stopped = time.time()
        os.kill(busy.process.pid, signal.SIGTERM)
        wait_for(
            lambda: _puts(agent.of("busy"))[-1].enabled is False,
            10,
            "the stopping worker to turn its protection off",
        )
        assert _busy(r, key) == {"busy"}
        r.set(last_release, 1)
        last.get(timeout=30)
        _exited(busy, STOP_TIMEOUT, "the stopped worker to exit")

    runs = _runs(r, key)
    assert all(run["starts"] == 1 and run["end"] for run in runs.values()), runs
    by_host = {h: [run for run in runs.values() if run["host"] == h] for h in ("busy", "idle")}
    assert (len(by_host["busy"]), len(by_host["idle"])) == (3, 4), runs
    assert all(c.status == 200 and c.method == "PUT" for c in agent.calls), agent.calls

    # Protected for the whole of every task, from before it started (the last one until the
    # worker was told to stop).
    off_at_stop = _puts(agent.of("busy"))[-1].at
    for host, host_runs in by_host.items():
        for run in host_runs:
            end = min(run["end"], off_at_stop) if host == "busy" else run["end"]
            assert _covered(agent.of(host), run["start"], end), (host, run, agent.of(host))

    # One call on, one off, for each stretch of work, however many tasks it held: on before the
    # first, off once idle for the grace, and off at SIGTERM without waiting.
    idle_puts = _puts(agent.of("idle"))
    busy_puts = _puts(agent.of("busy"))
    assert [c.enabled for c in idle_puts] == [True, False], idle_puts
    assert [c.enabled for c in busy_puts] == [True, False, True, False], busy_puts
    for call in idle_puts + busy_puts:
        expected = {"ProtectionEnabled": True, "ExpiresInMinutes": MINUTES}
        assert call.body == (expected if call.enabled else {"ProtectionEnabled": False})
    assert idle_puts[1].at >= max(run["end"] for run in by_host["idle"]) + GRACE - 0.5
    holds_ended = max(runs[result.id]["end"] for result in holds)
    assert holds_ended + GRACE - 0.5 <= busy_puts[1].at < runs[last.id]["start"]
    assert stopped < busy_puts[3].at < runs[last.id]["end"]
    assert all(c.at < scaled_in for c in agent.of("idle")), "a stopping idle worker calls nothing"


def test_a_refused_protection_is_logged_and_the_tasks_run(workers, r):
    """The likeliest failure: a task role without ecs:UpdateTaskProtection."""
    from tests.support.harness import stamped

    key = f"protect:{secrets.token_hex(4)}"
    with EcsAgent(ACCOUNT, deny=True) as agent:
        env = {"ECS_AGENT_URI": agent.endpoint("denied")}
        worker = workers.start("denied", "audit", app="tests.support.harness", env=env)
        workers.wait_ready(worker)
        for _ in range(3):
            stamped.apply_async((key, 0.2), queue="audit", **LIMITS).get(timeout=30)
        assert len(_runs(r, key)) == 3
        wait_for(lambda: "AccessDeniedException" in worker.tail(40), 10, "the refusal logged")
        # One refused call, not one a task: the next waits RETRY_AFTER.
        assert [(c.status, c.answer["error"]["Code"]) for c in agent.calls] == [
            (400, "AccessDeniedException")
        ]
        assert "cannot turn scale-in protection on" in worker.tail(40)


def test_a_malformed_agent_address_stops_the_worker_with_one_line(workers):
    worker = workers.start("misplaced", "audit", env={"ECS_AGENT_URI": "169.254.170.2/api/x"})
    wait_for(lambda: not worker.alive, 60, "the worker to refuse to start")
    assert worker.process.returncode != 0
    assert "kopter: error: ECS_AGENT_URI='169.254.170.2/api/x' is not an http URL" in worker.tail(5)
    assert "Traceback" not in worker.tail(40)


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class _Agent:
    """What the state machine asked, on a clock of the test's: the rules that take minutes."""

    def __init__(self, clock: _Clock) -> None:
        self.clock = clock
        self.asked: list[tuple[float, bool, int | None]] = []
        self.refuse = False

    def put(self, enabled: bool, minutes: int | None = None) -> None:
        self.asked.append((self.clock.now, enabled, minutes))
        if self.refuse:
            raise AgentError("refused")


@pytest.fixture
def machine() -> Iterator[tuple[ScaleInProtection, _Agent, _Clock]]:
    clock = _Clock()
    agent = _Agent(clock)
    yield ScaleInProtection(agent, idle_grace=5, clock=clock), agent, clock


def test_a_busy_worker_renews_once_a_margin_and_a_stuck_one_lets_go(machine):
    protection, agent, clock = machine
    limit = 900
    protection.taken(limit)
    assert agent.asked == [(1000.0, True, math.ceil((limit + 2 * MARGIN) / 60))]
    # Tasks keep coming: a call when the protection would not cover a new one, once a margin.
    for _ in range(int(10 * MARGIN)):
        clock.now += 1
        protection.taken(limit)
        protection.tick([(1.0, limit)])
    gaps = [b[0] - a[0] for a, b in zip(agent.asked, agent.asked[1:], strict=False)]
    assert len(gaps) >= 5 and all(MARGIN <= gap < 2 * MARGIN for gap in gaps), gaps
    # The last task hangs past its time limit (Celery should have ended it): protection goes
    # off, not renewed forever.
    started = clock.now
    while clock.now < started + limit + 2 * MARGIN + 10:
        clock.now += 1
        protection.tick([(clock.now - started, limit)])
    assert agent.asked[-1][1:] == (False, None)
    assert agent.asked[-1][0] - started <= limit + MARGIN + 5 + 1
    assert not protection.protected


def test_a_failed_call_waits_and_a_stopping_worker_asks_nothing(machine):
    protection, agent, clock = machine
    agent.refuse = True
    protection.taken(60)
    for _ in range(int(RETRY_AFTER) - 1):
        clock.now += 1
        protection.taken(60)
        protection.tick([(1.0, 60)])
    assert len(agent.asked) == 1, "a refused call is not repeated at each task"
    agent.refuse = False
    clock.now += 1
    protection.tick([(1.0, 60)])
    assert len(agent.asked) == 2 and protection.protected
    protection.stop()
    protection.taken(60)
    protection.tick([(1.0, 60)])
    assert agent.asked[-1][1:] == (False, None) and not protection.protected
    protection.taken(60)
    protection.tick([(1.0, 60)])
    assert len(agent.asked) == 3
