"""The test stack: a moto server and a Redis server of the tests' own, on free ports, started by
the first test module that needs them (a module marked `unit` does not).

``SETTINGS`` are the stack's, and kopter's tables are bound to them here (``bind``). The same
values go into the environment for what reads them there: the processes the tests spawn
(workers, beats, `kopter`), boto3's dummy credentials, and the Celery app that tests send tasks
through (``celeryconfig`` reads ``get_settings()``). Every name carries a random prefix: the
tests never touch a user's queues, tables or Redis data.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kopter.bootstrap import bootstrap
from kopter.devstack import (
    LOCAL_AWS_ENV,
    Child,
    free_port,
    spawn,
    start_moto,
    start_redis,
    stop_all,
    wait_for_line,
)
from kopter.settings import get_settings
from kopter.tables import bind
from tests.support.samples import ROOT

# The real CloudTrail samples' tenant, for every ingest test.
pytest_plugins = ["tests.support.trails"]

# Under `pytest -n` (make test), each worker process runs a stack of its own and keeps its logs
# in a directory of its own (test-output/gw0/, …); what outlives a run (the image's build cache)
# goes in OUTPUT_ROOT.
OUTPUT_ROOT = Path(os.environ.get("KOPTER_TEST_OUTPUT", ROOT / "test-output")).resolve()
OUTPUT = OUTPUT_ROOT / os.environ.get("PYTEST_XDIST_WORKER", "")
MOTO_PORT = free_port()
REDIS_PORT = free_port()

TEST_ENV = {
    **LOCAL_AWS_ENV,
    "KOPTER_AWS_ENDPOINT_URL": f"http://127.0.0.1:{MOTO_PORT}",
    "KOPTER_REDIS_URL": f"redis://127.0.0.1:{REDIS_PORT}/0",
    "KOPTER_PREFIX": f"kt{secrets.token_hex(3)}-",
    # moto's account for kopter's own credentials: where its queues are, what customers trust.
    "KOPTER_AWS_ACCOUNT_ID": "123456789012",
    # Short enough that redelivery and redrive happen within a test.
    "KOPTER_VISIBILITY_TIMEOUT": "6",
    "KOPTER_TASK_TIME_LIMIT": "4",
    "KOPTER_MAX_RECEIVE_COUNT": "2",
    "KOPTER_DESCRIBE_SPREAD_SECONDS": "0",
    # Workers' and beats' heartbeats (`kopter health`) stay in the tests' output.
    "KOPTER_HEALTH_DIR": str(OUTPUT / "health"),
    # Nothing answers there: a test that forgets its own price server never reaches AWS.
    "KOPTER_PRICING_URL": "http://127.0.0.1:9",
    "PYTHONUNBUFFERED": "1",
}
os.environ.update(TEST_ENV)
SETTINGS = get_settings()
bind(SETTINGS)


# In CI every command the tests need is installed (`make test` does it as root): a test skipped
# there would be green having checked nothing, so a skip is a failure.
CI = os.environ.get("CI") == "true"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item) -> Iterator[pytest.TestReport]:
    report: pytest.TestReport = yield
    if CI and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"a failure under CI=true: {reason}"
    return report


def needs(*commands: str) -> pytest.MarkDecorator:
    """Skip where one of ``commands`` is missing (`make test` installs them where it can, with
    scripts/ensure-commands)."""
    missing = [c for c in commands if shutil.which(c) is None]
    return pytest.mark.skipif(
        bool(missing),
        reason=f"needs {', '.join(missing)}, which `make test` installs as root "
        "(scripts/ensure-commands)",
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Modules marked `long` first: `make test` hands whole modules to its two workers in this
    order (--dist loadfile --no-loadscope-reorder), so the longest start early and the two
    finish together, not one waiting on a long module started last."""
    items.sort(key=lambda item: item.get_closest_marker("long") is None)


@pytest.fixture(scope="session")
def stack() -> Iterator[None]:
    """moto's server and Redis, started by the first test module that needs them."""
    logs = OUTPUT / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    redis = start_redis(REDIS_PORT, OUTPUT / "redis", logs)
    moto = start_moto(MOTO_PORT, logs)
    try:
        bootstrap(SETTINGS)
        yield
    finally:
        moto.stop()
        redis.stop()


@pytest.fixture(scope="module", autouse=True)
def _stack_unless_unit(request: pytest.FixtureRequest) -> None:
    """Every test module runs on the stack but a `unit` one, which never starts it. Module-scoped,
    so it comes before the modules' own fixtures; a session fixture that needs the stack asks for
    it (as `trail` does)."""
    if request.node.get_closest_marker("unit") is None:
        request.getfixturevalue("stack")


@dataclass(frozen=True)
class Connected:
    tenant: str
    account: str
    external_id: str


def new_account_id() -> str:
    return "".join(secrets.choice("0123456789") for _ in range(12))


class Kopter:
    """The real `kopter` command line, each call in a process of its own."""

    def __call__(
        self, *args: str, env: dict[str, str] | None = None, ok: bool | None = True
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "kopter", *args],
            env={**os.environ, **(env or {})},
            capture_output=True,
            text=True,
            timeout=120,
            cwd=ROOT,
        )
        if ok is True:
            assert result.returncode == 0, f"kopter {' '.join(args)}: {result.stderr}"
        if ok is False:
            assert result.returncode != 0, f"kopter {' '.join(args)} should fail"
            assert "Traceback" not in result.stderr, result.stderr
        return result

    def rows(self, *args: str, **kw: Any) -> list[dict[str, Any]]:
        """A listing's `--json` lines, parsed."""
        return [json.loads(line) for line in self(*args, "--json", **kw).stdout.splitlines()]

    def new_tenant(self) -> str:
        return self("tenants", "add", f"acme-{secrets.token_hex(4)}").stdout.strip()

    def connect(
        self, *options: str, tenant: str | None = None, account: str | None = None
    ) -> Connected:
        """An account (a new id by default), with role `kopter`, connected to ``tenant`` (a new
        one by default)."""
        tenant = tenant or self.new_tenant()
        account = account or new_account_id()
        [row] = self.rows(
            "accounts",
            "add",
            "--tenant",
            tenant,
            "--account-id",
            account,
            "--role-arn",
            f"arn:aws:iam::{account}:role/kopter",
            *options,
        )
        return Connected(tenant, account, row["external_id"])


def customer_client(c: Connected, service: str, region: str = "us-east-1") -> Any:
    """A client acting inside the customer's own account (in moto), as the customer would."""
    import boto3

    from kopter.crossaccount import Target, assume_role

    role = f"arn:aws:iam::{c.account}:role/kopter"
    credentials = assume_role(Target(c.account, role, c.external_id), SETTINGS)
    return boto3.client(
        service,
        region_name=region,
        endpoint_url=os.environ["KOPTER_AWS_ENDPOINT_URL"],
        aws_access_key_id=credentials["access_key"],
        aws_secret_access_key=credentials["secret_key"],
        aws_session_token=credentials["token"],
    )


@pytest.fixture
def kopter() -> Kopter:
    return Kopter()


class Workers:
    """Real `celery worker` processes, stopped (with their pool children) after the test."""

    def __init__(self) -> None:
        self.children: list[Child] = []

    def start(
        self,
        name: str,
        queues: str,
        app: str = "tasks",
        env: dict[str, str] | None = None,
        options: tuple[str, ...] = (),
    ) -> Child:
        argv = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            app,
            "worker",
            "-Q",
            queues,
            "-n",
            f"{name}@%h",
            "-c",
            "2",
            "-l",
            "INFO",
            *options,
        ]
        log_dir = OUTPUT / "logs"
        child = spawn(name, argv, {**os.environ, **(env or {})}, log_dir, cwd=ROOT)
        self.children.append(child)
        return child

    def wait_ready(self, child: Child, timeout: float = 60) -> None:
        wait_for_line(child, " ready.", timeout)

    def stop_all(self) -> None:
        stop_all(self.children, timeout=10)


@pytest.fixture
def workers() -> Iterator[Workers]:
    w = Workers()
    yield w
    w.stop_all()


def wait_for(
    predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.25
) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
