"""Local processes for the embedded stack (`kopter dev`) and the tests: moto's server standing
in for AWS on 127.0.0.1, a Redis server when none is reachable, and kopter's own workers.

Every child runs in its own process group, so stopping it also stops whatever it forked
(prefork pool children), and nothing is left behind.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

from kopter.errors import KopterError

# The local AWS endpoint needs credentials of some kind; moto accepts any.
LOCAL_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "MOTO_EC2_LOAD_DEFAULT_AMIS": "false",  # 1,291 AMIs kopter never uses
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(host: str, port: int, timeout: float = 0.3) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def redis_reachable(url: str) -> bool:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 6379
    if not port_open(host, port):
        return False
    with socket.create_connection((host, port), timeout=1) as s:
        s.sendall(b"PING\r\n")
        reply = s.recv(64)
    return reply.startswith((b"+PONG", b"-NOAUTH"))


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path | None = None
    _log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 15) -> None:
        """SIGTERM the child's whole process group; SIGKILL what is left after ``timeout``."""
        if self.alive:
            _killpg_quietly(self.process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout)
        # Whatever the leader left in its group (pool children, say) goes too.
        self.kill()
        if self._log:
            self._log.close()

    def kill(self) -> None:
        _killpg_quietly(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def tail(self, lines: int = 20) -> str:
        if not self.log_path or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def stop_all(children: list[Child], timeout: float = 15) -> None:
    """Stop children together (a worker's warm shutdown waits out its long polls, so one at a
    time adds up), killing what is left after ``timeout``."""
    for child in children:
        if child.alive:
            _killpg_quietly(child.process.pid, signal.SIGTERM)
    for child in children:
        child.stop(timeout=timeout)


def _killpg_quietly(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def spawn(
    name: str,
    argv: list[str],
    env: Mapping[str, str],
    log_dir: Path | None,
    cwd: Path | None = None,
) -> Child:
    log_path = log_dir / f"{name}.log" if log_dir else None
    log = open(log_path, "wb") if log_path else None  # noqa: SIM115 (closed by Child.stop)
    process = subprocess.Popen(
        argv,
        env=dict(env),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=log or subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return Child(name, process, log_path, log)


def wait_for_port(child: Child, port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open("127.0.0.1", port):
            return
        if not child.alive:
            raise KopterError(f"{child.name} exited at start-up:\n{child.tail()}")
        time.sleep(0.1)
    raise KopterError(f"{child.name} did not listen on 127.0.0.1:{port} within {timeout:.0f}s")


def wait_for_line(child: Child, text: str, timeout: float = 60) -> None:
    """Wait until ``text`` shows in the child's log (a worker's " ready.", say)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in child.tail(200):
            return
        if not child.alive:
            raise KopterError(f"{child.name} exited:\n{child.tail(40)}")
        time.sleep(0.2)
    raise KopterError(f"{child.name} did not log {text!r} within {timeout:.0f}s:\n{child.tail(40)}")


def start_moto(port: int, log_dir: Path | None) -> Child:
    """moto's server on 127.0.0.1:port: every AWS service kopter calls, over real HTTP."""
    if port_open("127.0.0.1", port):
        raise KopterError(f"port {port} is taken: set KOPTER_DEV_MOTO_PORT to a free one")
    argv = [sys.executable, "-m", "kopter.motoserver", "-H", "127.0.0.1", "-p", str(port)]
    child = spawn("moto", argv, {**os.environ, **LOCAL_AWS_ENV}, log_dir)
    wait_for_port(child, port)
    return child


def jwt_api_env(key: str) -> dict[str, str]:
    """The settings of a `kopter api` on this machine taking HS256 bearer tokens signed with
    ``key``, with a cursor key of its own."""
    return {
        "KOPTER_API_AUTH": "jwt",
        "KOPTER_API_JWT_ALGORITHM": "HS256",
        "KOPTER_API_JWT_KEY": key,
        "KOPTER_API_CURSOR_KEY": secrets.token_urlsafe(32),
    }


def start_api(
    name: str, port: int, env: Mapping[str, str], log_dir: Path | None, cwd: Path | None = None
) -> Child:
    """`kopter api` on 127.0.0.1:port, listening when this returns."""
    argv = [sys.executable, "-m", "kopter", "api", "--port", str(port)]
    child = spawn(name, argv, env, log_dir, cwd)
    try:
        wait_for_port(child, port)
    except KopterError:
        child.stop()
        raise
    return child


def start_redis(port: int, data_dir: Path, log_dir: Path | None) -> Child:
    """A throwaway redis-server on 127.0.0.1:port keeping its data in ``data_dir``."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise KopterError(
            "no Redis is reachable and redis-server is not installed: "
            "`apt-get install redis-server` (or point KOPTER_REDIS_URL at a running Redis)"
        )
    data_dir.mkdir(parents=True, exist_ok=True)
    argv = [
        binary,
        "--bind",
        "127.0.0.1",
        "--port",
        str(port),
        "--dir",
        str(data_dir),
        "--save",
        "",
        "--appendonly",
        "no",
    ]
    child = spawn("redis", argv, os.environ, log_dir)
    wait_for_port(child, port)
    return child


def celery_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "celery", "-A", "tasks", *args]
