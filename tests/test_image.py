"""kopter's image (Containerfile), built by scripts/build-image as `make image` builds it, then
the stack run from it as an orchestrator runs it: the test stack's moto and Redis on the host,
`kopter bootstrap`, a worker on every queue, beat and the read API each in a container of its
own (podman, the host's network, the settings as environment), the demo's pipelines driven
through them as `kopter dev` shows them, and every container stopped as ECS stops a task:
SIGTERM, then SIGKILL after the stop timeout, which none of them may need."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from importlib.metadata import distributions

import httpx
import pytest
from packaging.utils import canonicalize_name

from kopter import demo
from kopter.dev import seed_demo, show_pipeline
from kopter.devstack import LOCAL_AWS_ENV, free_port, jwt_api_env
from kopter.pricing.offerserver import SAMPLE_OFFERS, OfferServer
from kopter.queues import WORK_QUEUES
from tests.conftest import OUTPUT, OUTPUT_ROOT, ROOT, Kopter
from tests.support.containers import PODMAN, RUN_OPTIONS
from tests.support.pipeline import assert_pipeline_shown
from tests.support.webapp import JWT_KEY, token

# Building from nothing (CI) takes minutes: the base from Debian's packages, the wheels, the
# image; the cache keeps the first two between runs.
pytestmark = [pytest.mark.long, pytest.mark.timeout(1800)]

# ECS's default stopTimeout: SIGKILL this long after SIGTERM.
STOP_TIMEOUT = 30
UID = "10001"


@pytest.fixture(scope="module")
def image() -> str:
    """The image's id, built by the script `make image` runs."""
    for tool in ("podman", "mmdebstrap"):
        assert shutil.which(tool), f"{tool} is missing: `make image` installs it as root"
    iid = OUTPUT / "image.iid"
    build = subprocess.run(
        [
            ROOT / "scripts" / "build-image",
            "--cache",
            OUTPUT_ROOT / "image-cache",
            "--iidfile",
            iid,
        ],
        env={**os.environ, "VENV": sys.prefix},
        capture_output=True,
        text=True,
        timeout=1500,
        cwd=ROOT,
    )
    assert build.returncode == 0, build.stderr
    print(build.stderr)  # its size and how long it took
    return iid.read_text().strip()


class Containers:
    """Containers of the image, each with the settings as its environment; their logs are kept
    and they are removed after the test."""

    def __init__(self, image: str, env: dict[str, str]) -> None:
        self.image, self.env = image, env
        self.names: list[str] = []

    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*PODMAN, *args], capture_output=True, text=True, timeout=timeout, check=False
        )

    def _options(self) -> list[str]:
        return [*RUN_OPTIONS, *(f"--env={name}={value}" for name, value in self.env.items())]

    def once(self, *command: str) -> subprocess.CompletedProcess[str]:
        """A one-off task (`kopter bootstrap`), removed when it ends."""
        return self._run("run", "--rm", *self._options(), self.image, *command)

    def start(self, role: str, *command: str) -> str:
        name = f"{self.env['KOPTER_PREFIX']}{role}"
        started = self._run(
            "run", "--detach", "--name", name, *self._options(), self.image, *command
        )
        assert started.returncode == 0, started.stderr
        self.names.append(name)
        return name

    def exec(self, name: str, *command: str) -> subprocess.CompletedProcess[str]:
        return self._run("exec", name, *command)

    def probe(self, name: str, *health: str) -> None:
        """`kopter health` inside the container, as an ECS health check runs it."""
        answer = self.exec(name, "kopter", "health", *health, "--wait", "120")
        assert answer.returncode == 0, f"{answer.stdout}{answer.stderr}\n{self.logs(name)}"

    def stop(self, name: str) -> tuple[int, float]:
        """As ECS stops a task: SIGTERM, SIGKILL after STOP_TIMEOUT. The exit status and how
        long the stop took."""
        started = time.monotonic()
        stopped = self._run("stop", "--time", str(STOP_TIMEOUT), name, timeout=STOP_TIMEOUT + 60)
        assert stopped.returncode == 0, stopped.stderr
        elapsed = time.monotonic() - started
        state = json.loads(self._run("inspect", "--format", "{{json .State}}", name).stdout)
        return int(state["ExitCode"]), elapsed

    def logs(self, name: str) -> str:
        logs = self._run("logs", name)
        return logs.stdout + logs.stderr

    def remove_all(self) -> None:
        for name in self.names:
            (OUTPUT / "logs" / f"{name}.log").write_text(self.logs(name))
            self._run("rm", "--force", "--time", "0", name)


def test_the_stack_runs_from_the_image_and_stops_as_ecs_stops_it(image, capsys):
    prefix = f"ki{secrets.token_hex(3)}-"
    api_port = free_port()
    # The production limits, not the suite's short ones (the account check alone may take more
    # than the suite's 4 s on a loaded machine); a deployment of its own, so bootstrap makes it.
    host_env = {
        name: value
        for name, value in os.environ.items()
        if name
        not in ("KOPTER_TASK_TIME_LIMIT", "KOPTER_VISIBILITY_TIMEOUT", "KOPTER_MAX_RECEIVE_COUNT")
    }
    with OfferServer(SAMPLE_OFFERS) as offers:
        host_env |= {"KOPTER_PREFIX": prefix, "KOPTER_PRICING_URL": offers.url}
        # What a task definition would set; heartbeats stay in the image's KOPTER_HEALTH_DIR.
        settings = {
            name: value
            for name, value in host_env.items()
            if name.startswith("KOPTER_") and name != "KOPTER_HEALTH_DIR"
        }
        containers = Containers(image, {**settings, **LOCAL_AWS_ENV, **jwt_api_env(JWT_KEY)})
        try:
            _run_the_stack(containers, host_env, api_port, capsys)
        finally:
            containers.remove_all()


def _run_the_stack(containers: Containers, host_env: dict[str, str], api_port: int, capsys):
    bootstrap = containers.once("kopter", "bootstrap")
    assert bootstrap.returncode == 0, bootstrap.stderr
    assert "created" in bootstrap.stdout, bootstrap.stdout
    node = "image@kopter"
    queues = ",".join(WORK_QUEUES)
    worker = containers.start(
        "worker", "celery", "-A", "tasks", "worker", "-Q", queues, "-c", "2", "-n", node
    )
    beat = containers.start("beat", "celery", "-A", "tasks", "beat")
    api = containers.start("api", "kopter", "api", "--port", str(api_port))
    containers.probe(worker, "worker", "--node", node)
    containers.probe(beat, "beat", "--ready")
    containers.probe(api, "api", "--url", f"http://127.0.0.1:{api_port}")
    for name in (worker, beat, api):
        # Not root, and tini is PID 1 with the role's command as its child.
        assert containers.exec(name, "id", "-u").stdout.strip() == UID
        pid1 = containers.exec(name, "cat", "/proc/1/cmdline").stdout.split("\0")
        assert pid1[0] == "/usr/bin/tini", pid1

    # The host's command line sees the containers' worker and beat through Redis.
    kopter = Kopter()
    status = kopter.rows("status", env=host_env)
    [seen] = [row for row in status if row.get("worker") == node]
    assert seen["queues"] == sorted(WORK_QUEUES), seen
    assert all(row["last_run"] for row in status if "beat_entry" in row), status

    capsys.readouterr()
    trail = seed_demo(host_env)
    show_pipeline(host_env, trail)
    assert_pipeline_shown(capsys.readouterr().out)

    [tenant] = [t for t in kopter.rows("tenants", "list", env=host_env) if t["name"] == demo.TENANT]
    base = f"http://127.0.0.1:{api_port}"
    bearer = {"Authorization": f"Bearer {token(tenant['tenant_id'])}"}
    costs = httpx.get(f"{base}/v1/price-graph", headers=bearer, timeout=30).json()["items"]
    assert sum(Decimal(p["cost_usd"]) for p in costs) > 0, costs
    audit = httpx.get(f"{base}/v1/audit/aws", headers=bearer, timeout=30).json()["items"]
    assert len(audit) == trail.records, audit
    # The web app ships inside the image (setup.cfg's data_files): every file of it is served.
    web = ROOT / "web" / "src"
    for path in sorted(p for p in web.rglob("*") if p.is_file()):
        served = httpx.get(f"{base}/{path.relative_to(web)}", timeout=30)
        assert served.status_code == 200 and served.content == path.read_bytes(), path

    with ThreadPoolExecutor(3) as pool:
        names = (worker, beat, api)
        stops = dict(zip(names, pool.map(containers.stop, names), strict=True))
    for name, (status_code, elapsed) in stops.items():
        assert status_code == 0, f"{name} exited {status_code}:\n{containers.logs(name)}"
        assert elapsed < STOP_TIMEOUT, f"{name} took {elapsed:.1f}s: SIGKILL ended it"
    assert "Warm shutdown" in containers.logs(worker), containers.logs(worker)
    print({name: f"{elapsed:.1f}s" for name, (_, elapsed) in stops.items()})


def test_the_image_runs_the_versions_the_tests_run(image):
    """Every distribution in the image is one the runtime lock pins (or kopter), at the version
    this venv, installed by `make test` from the dev lock, runs."""
    listed = Containers(image, {}).once("python3", "-c", DISTRIBUTIONS)
    assert listed.returncode == 0, listed.stderr
    inside = json.loads(listed.stdout)
    pinned = {
        canonicalize_name(line.split("==")[0])
        for line in (ROOT / "requirements" / "runtime.txt").read_text().splitlines()
        if line and not line.startswith((" ", "#"))
    }
    assert set(inside) == pinned | {"kopter"}
    here = {canonicalize_name(d.metadata["Name"]): d.version for d in distributions()}
    assert inside == {name: here[name] for name in inside}


DISTRIBUTIONS = """
import json
from importlib.metadata import distributions
from packaging.utils import canonicalize_name
print(json.dumps({canonicalize_name(d.metadata["Name"]): d.version for d in distributions()}))
"""
