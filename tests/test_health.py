"""Supervisors' probes (`kopter health`) against real processes, and the systemd units in
deploy/ that run them, checked by `systemd-analyze verify`.

(Beat's probe is asked in tests/test_beat_hangs.py, where beat is made to lose Redis and to
freeze.)
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

from kopter.devstack import free_port, spawn, wait_for_port
from tests.conftest import OUTPUT, ROOT, needs, wait_for

GRACE = 10  # KOPTER_HEALTH_GRACE for these workers: the least kopter accepts


def _control(*args: str) -> None:
    argv = [sys.executable, "-m", "celery", "-A", "tasks", "control", *args]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_worker_is_unhealthy_when_its_consumer_stops_receiving_or_it_freezes(
    workers, kopter, tmp_path
):
    env = {"KOPTER_HEALTH_DIR": str(tmp_path), "KOPTER_HEALTH_GRACE": str(GRACE)}
    name = f"probed-{os.getpid()}"
    node = f"{name}@{socket.gethostname()}"
    worker = workers.start(name, "audit", env=env)
    probe = ("health", "worker", "--node", node)

    ready = kopter(*probe, "--wait", "60", env=env).stdout
    assert ready.startswith(f"worker {node}: ok"), ready

    def unhealthy() -> str | None:
        answer = kopter(*probe, env=env, ok=None)
        return answer.stdout if answer.returncode == 1 else None

    # Its consumer stops taking from SQS (the process and its event loop go on).
    _control("cancel_consumer", "audit", "-d", node)
    dead = str(wait_for(unhealthy, GRACE * 4, "the probe to call the worker unhealthy"))
    assert dead.startswith(f"unhealthy: worker {node}: its consumer has not received"), dead
    assert len(dead.splitlines()) == 1, dead

    _control("add_consumer", "audit", "-d", node)
    kopter(*probe, "--wait", "60", env=env)

    # Frozen: the heartbeat stops.
    os.kill(worker.process.pid, signal.SIGSTOP)
    try:
        frozen = str(wait_for(unhealthy, GRACE * 4, "the probe to see the worker frozen"))
        assert "no heartbeat for" in frozen, frozen
    finally:
        os.kill(worker.process.pid, signal.SIGCONT)
    kopter(*probe, "--wait", "60", env=env)


def test_the_api_probe_answers_for_a_running_api_and_fails_for_a_missing_one(kopter):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    down = kopter("health", "api", "--url", url, "--timeout", "1", ok=False).stdout
    assert down.startswith("unhealthy: api:") and "does not answer" in down, down
    env = {
        **os.environ,
        "KOPTER_API_AUTH": "gateway",
        "KOPTER_API_GATEWAY_SECRET": "s" * 32,
        "KOPTER_API_CURSOR_KEY": "c" * 32,
    }
    argv = [sys.executable, "-m", "kopter", "api", "--port", str(port)]
    api = spawn("probed-api", argv, env, OUTPUT / "logs", cwd=ROOT)
    try:
        wait_for_port(api, port, 60)
        up = kopter("health", "api", "--url", url).stdout
        assert up == f"api: ok ({url}/healthz)\n", up
    finally:
        api.stop()


DEPLOY = ROOT / "deploy"


@needs("systemd-analyze")
def test_the_deploy_units_pass_systemd_analyze_verify(tmp_path):
    # The units as installed: kopter's venv and checkout at this test's paths, so that verify
    # finds every executable they name.
    units = sorted(p for p in DEPLOY.iterdir() if p.suffix in {".service", ".timer"})
    for unit in units:
        text = unit.read_text().replace("/opt/kopter/venv", sys.prefix)
        (tmp_path / unit.name).write_text(text.replace("/opt/kopter", str(ROOT)))
    names = [u.name.replace("@.", "@default.") for u in units]
    done = subprocess.run(
        ["systemd-analyze", "verify", *names],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == "" and done.stdout == "", done.stderr + done.stdout
    # Every service reads the settings file; each probe, started by its timer, runs
    # `kopter health` on its unit.
    for unit in units:
        if unit.suffix == ".service":
            assert "EnvironmentFile=/etc/kopter/kopter.env" in unit.read_text(), unit.name
    for role in ("worker", "beat", "api"):
        [probe] = DEPLOY.glob(f"kopter-{role}-probe*.service")
        assert f"/opt/kopter/venv/bin/kopter health {role}" in probe.read_text()
        assert (DEPLOY / probe.name.replace(".service", ".timer")).exists()
