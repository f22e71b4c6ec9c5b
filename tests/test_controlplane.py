"""The control plane never stops the data plane: with the control plane's Redis down, tasks keep
flowing from SQS; when Redis is back, remote control and events come back by themselves."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from kombu import Connection

from kopter.devstack import free_port, start_redis
from tests.conftest import OUTPUT, wait_for
from tests.support.samples import ROOT


def _ping(name: str, env: dict[str, str]) -> bool:
    """`celery inspect ping` to one worker, through the Redis in ``env``."""
    argv = [sys.executable, "-m", "celery", "-A", "tests.support.harness", "inspect", "ping"]
    argv += ["-d", name, "--timeout", "2"]
    done = subprocess.run(
        argv, env={**os.environ, **env}, capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    return done.returncode == 0 and "pong" in done.stdout


def _task_event_from(url: str, node: str, send: Any) -> dict[str, Any]:
    """A task-succeeded event from ``node``, as a Redis subscriber sees it, calling ``send()``
    until one comes (the subscriber may miss what was sent before it listened)."""
    from tests.support.harness import app

    seen: dict[str, Any] = {}

    def on_event(event: dict[str, Any]) -> None:
        if event["type"] == "task-succeeded" and event.get("hostname") == node:
            seen.update(event)
            receiver.should_stop = True

    with Connection(url) as conn:
        receiver = app.events.Receiver(conn, handlers={"*": on_event})
        thread = threading.Thread(target=receiver.capture, kwargs={"limit": None}, daemon=True)
        thread.start()

        def arrived() -> bool:
            if not seen:
                send()
            return bool(seen)

        wait_for(arrived, 60, "a task event from the worker", interval=2)
        thread.join(timeout=10)
    return seen


def test_tasks_flow_with_redis_down_and_monitoring_comes_back(workers, tmp_path: Path):
    from tests.support.harness import touch

    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    redis_dir = OUTPUT / f"redis-outage-{port}"
    redis = start_redis(port, redis_dir, OUTPUT / "logs")
    env = {"KOPTER_REDIS_URL": url}
    name = f"outage-{secrets.token_hex(3)}"
    try:
        worker = workers.start(name, "audit", app="tests.support.harness", env=env)
        workers.wait_ready(worker)
        node = f"{name}@{os.uname().nodename}"
        wait_for(lambda: _ping(node, env), 60, "the worker to answer ping over Redis")

        def runs(label: str) -> None:
            path = tmp_path / label
            touch.apply_async((str(path),), queue="audit")
            wait_for(path.exists, 60, f"task {label} to run")

        runs("before")
        redis.stop()
        # Heartbeats, task events and the remote-control thread all fail now: none of it may
        # reach the consumer of SQS.
        for i in range(3):
            runs(f"during-{i}")
        assert not _ping(node, env)
        # `kopter status` still shows the queues, and says what it cannot know.
        status = subprocess.run(
            [sys.executable, "-m", "kopter", "status"],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
        )
        assert status.returncode == 1 and "cloudtrail-notifications" in status.stdout
        assert "beat entries and workers unknown: cannot reach Redis" in status.stderr
        assert worker.alive

        redis = start_redis(port, redis_dir, OUTPUT / "logs")
        wait_for(lambda: _ping(node, env), 90, "remote control to come back by itself")
        path = tmp_path / "after"
        event = _task_event_from(url, node, lambda: touch.apply_async((str(path),), queue="audit"))
        assert event["uuid"], "task events did not come back"
        assert worker.alive
        log = worker.tail(2000)
        assert "Unrecoverable error" not in log
        assert "events: Redis unavailable" in log
    finally:
        redis.stop()
