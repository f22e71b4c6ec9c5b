"""Flower on an SQS deployment: two real workers on SQS (moto), their events and remote control
over Redis (tasks/controlplane.py), read back through Flower's HTTP API, with Flower started
both ways: as Celery's users start it (`celery -A tasks flower`) and as `kopter flower`. And
`celery -A tasks events --dump` reading the same events."""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import shutil
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import urllib3
from prometheus_client.parser import text_string_to_metric_families

from kopter import aws, queues
from kopter.devstack import Child, celery_argv, free_port, spawn, wait_for_line, wait_for_port
from kopter.settings import get_settings
from tests.conftest import OUTPUT, needs, wait_for
from tests.support import drain
from tests.support.samples import ROOT

pytestmark = pytest.mark.long


@pytest.fixture(autouse=True)
def audit_emptied_after() -> Iterator[None]:
    """The tests' always-failing tasks stay in the audit queue, received again and again until
    SQS parks them in its DLQ, after the test: later modules in this process count both."""
    yield
    drain.emptied("audit")


AUTH = "kopter:" + secrets.token_hex(8)


class Flower:
    def __init__(self, child: Child, port: int) -> None:
        self.child = child
        self.base = f"http://127.0.0.1:{port}"
        self.headers = urllib3.make_headers(basic_auth=AUTH)

    def request(self, method: str, path: str, **fields: str) -> Any:
        response = urllib3.request(
            method, self.base + path, headers=self.headers, fields=fields or None, timeout=30
        )
        assert response.status == 200, f"{method} {path}: {response.status} {response.data!r}"
        return json.loads(response.data)

    def tasks(self) -> dict[str, dict[str, Any]]:
        return self.request("GET", "/api/tasks")  # type: ignore[no-any-return]


KOPTER_FLOWER = [sys.executable, "-m", "kopter", "flower"]


def _start_flower(name: str, argv: list[str], env: dict[str, str]) -> Iterator[Flower]:
    port = free_port()
    argv = [*argv, "--address=127.0.0.1", f"--port={port}"]
    child = spawn(name, argv, {**os.environ, **env}, OUTPUT / "logs", cwd=ROOT)
    try:
        wait_for_port(child, port)
        yield Flower(child, port)
    finally:
        child.stop(timeout=10)


@pytest.fixture(params=["celery -A tasks flower", "kopter flower"])
def flower(request: pytest.FixtureRequest) -> Iterator[Flower]:
    """Flower behind a login, started either way: as Celery's users start it (the login in
    Flower's own FLOWER_BASIC_AUTH), or as `kopter flower` (the login from kopter's settings)."""
    if request.param == "kopter flower":
        yield from _start_flower("flower-kopter", KOPTER_FLOWER, {"KOPTER_FLOWER_BASIC_AUTH": AUTH})
    else:
        yield from _start_flower(
            "flower-celery", celery_argv("flower"), {"FLOWER_BASIC_AUTH": AUTH}
        )


@pytest.fixture
def open_flower() -> Iterator[Flower]:
    """Flower as `make run` starts it, without a login (a browser would need one per request)."""
    yield from _start_flower("flower-open", [*KOPTER_FLOWER, "--no-auth"], {})


def test_flower_shows_two_sqs_workers_their_tasks_and_controls_them(workers, flower, kopter):
    from tests.support.harness import always_fails, app, slow

    r = redis.Redis.from_url(get_settings().redis_url)
    key = f"flower:{secrets.token_hex(4)}"
    names = {f"alpha-{key[7:]}", f"beta-{key[7:]}"}
    started = [workers.start(name, "audit", app="tests.support.harness") for name in sorted(names)]
    for worker in started:
        workers.wait_ready(worker)

    # Remote control over Redis, from a plain client: both answer.
    def pinged() -> set[str]:
        replies = app.control.inspect(timeout=2).ping() or {}
        return {node.split("@")[0] for node in replies} & names

    wait_for(lambda: pinged() == names, 30, "both workers to answer inspect ping")
    anonymous = urllib3.request("GET", flower.base + "/api/workers", timeout=30)
    assert anonymous.status == 401

    # Flower lists both, with their queues, pool and processed counts.
    def listed() -> dict[str, Any]:
        workers_ = flower.request("GET", "/api/workers?refresh=1")
        return {n.split("@")[0]: w for n, w in workers_.items() if n.split("@")[0] in names}

    listing = wait_for(lambda: (w := listed()).keys() == names and w, 60, "Flower's worker list")
    assert isinstance(listing, dict)
    for info in listing.values():
        assert [q["name"] for q in info["active_queues"]] == ["audit"]
        assert info["stats"]["pool"]["max-concurrency"] == 2

    # `kopter status` lists them too, beside the queues and beat's entries.
    rows = kopter.rows("status")
    alive = {r["worker"].split("@")[0]: r for r in rows if "worker" in r}
    assert {n: (alive[n]["alive"], alive[n]["queues"]) for n in names} == {
        n: (True, ["audit"]) for n in names
    }
    assert {r["beat_entry"] for r in rows if "beat_entry" in r} >= {"ec2-pricing", "audit"}

    ok = [slow.apply_async((key, 0.1), queue="audit") for _ in range(4)]
    failing = always_fails.apply_async((f"{key}:fails",), queue="audit")
    assert all(result.get(timeout=60).split("@")[0] in names for result in ok)

    def states() -> dict[str, str]:
        return {uuid: task["state"] for uuid, task in flower.tasks().items()}

    wanted = {result.id: "SUCCESS" for result in ok} | {failing.id: "FAILURE"}
    wait_for(lambda: wanted.items() <= states().items(), 60, "every task's final state in Flower")
    task = flower.request("GET", f"/api/task/info/{failing.id}")
    assert task["name"] == "tests.support.harness.always_fails"
    assert "this task always fails" in task["traceback"]
    assert task["args"] == repr((f"{key}:fails",))
    assert flower.tasks()[ok[0].id]["runtime"] >= 0.1  # each slept 0.1 s

    # Revoke from Flower's API: a task waiting for its countdown (in SQS) never runs.
    held = slow.apply_async((f"{key}:revoked", 0), queue="audit", countdown=6)
    assert flower.request("POST", f"/api/task/revoke/{held.id}")["message"]
    wait_for(lambda: states().get(held.id) == "REVOKED", 30, "the revoked task to be discarded")
    assert r.llen(f"{key}:revoked") == 0
    assert all(worker.alive for worker in started)

    # Pool resize, rate limits and shutdown from Flower's API: commands that must run on the
    # worker's event loop, not in the mailbox's thread.
    full = {n.split("@")[0]: n for n in flower.request("GET", "/api/workers")}
    alpha, beta = (full[n] for n in sorted(names))
    assert flower.request("POST", f"/api/worker/pool/grow/{alpha}?n=1")["message"]

    def processes() -> int:
        info = flower.request("GET", f"/api/workers?refresh=1&workername={alpha}")[alpha]
        return len(info["stats"]["pool"]["processes"])

    wait_for(lambda: processes() == 3, 60, "the pool to grow to three processes")
    limited = "/api/task/rate-limit/tasks.audit.run_daily_audit"
    assert flower.request("POST", f"{limited}?workername={alpha}&ratelimit=10/m")["message"]
    assert flower.request("POST", f"/api/worker/shutdown/{beta}")["message"]
    wait_for(lambda: not started[1].alive, 60, "the worker Flower shut down to exit")
    assert started[0].alive


def test_flower_metrics_hold_the_queue_depths_sqs_reports(flower):
    from tests.support.harness import touch

    settings = get_settings()
    sqs = aws.client("sqs", get_settings())
    url = sqs.get_queue_url(QueueName=queues.sqs_name(settings, "pricing"))["QueueUrl"]
    sent = [touch.apply_async(("/dev/null",), queue="pricing").id for _ in range(3)]
    try:
        response = urllib3.request(
            "GET", flower.base + "/metrics", headers=flower.headers, timeout=30
        )
        assert response.status == 200
        reported = {d.queue: d for d in queues.depths(settings)}
        gauges = {}
        for family in text_string_to_metric_families(response.data.decode()):
            for sample in family.samples:
                if sample.name == "kopter_sqs_messages":
                    gauges[sample.labels["queue"], sample.labels["state"]] = sample.value
        assert reported["pricing"].visible >= 3
        for queue, d in reported.items():
            assert gauges[queue, "visible"] == d.visible, queue
            assert gauges[queue, "in_flight"] == d.in_flight, queue
            assert gauges[queue, "delayed"] == d.delayed, queue
            assert gauges[queue, "dlq"] == d.dlq_visible, queue
        # Flower's own task metrics are served on the same endpoint.
        assert b"flower_events_total" in response.data
    finally:
        _delete(sqs, url, set(sent))


def _delete(sqs: Any, url: str, task_ids: set[str]) -> None:
    """Take this test's messages out of a queue no worker consumes here."""

    def gone() -> bool:
        for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
            if _celery_task_id(m["Body"]) in task_ids:
                task_ids.discard(_celery_task_id(m["Body"]))
                sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
            else:  # not ours: give it back at once
                sqs.change_message_visibility(
                    QueueUrl=url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0
                )
        return not task_ids

    wait_for(gone, 30, "this test's messages to be deleted")


def _celery_task_id(body: str) -> str:
    return str(json.loads(base64.b64decode(body))["headers"]["id"])


def test_celery_events_dump_shows_the_tasks_of_an_sqs_worker(workers):
    """`celery -A tasks events --dump`, as Celery's docs show it: the worker's task events, read
    from the control plane, with the task's arguments and runtime."""
    from tests.support.harness import always_fails, slow

    name = f"delta-{secrets.token_hex(3)}"
    worker = workers.start(name, "audit", app="tests.support.harness")
    dump = spawn(
        "events-dump", celery_argv("events", "--dump"), os.environ, OUTPUT / "logs", cwd=ROOT
    )
    try:
        workers.wait_ready(worker)
        # Events are broadcast: the dump sees those sent once it listens, as the first event it
        # shows from the worker (a heartbeat, say) proves.
        wait_for_line(dump, f"{name}@", 30)
        ok = slow.apply_async((f"events:{name}", 0.2), queue="audit")
        failing = always_fails.apply_async((f"events:{name}:fails",), queue="audit")
        ok.get(timeout=60)
        wait_for(lambda: "failed" in _dumped(dump, failing.id), 60, "the failure in the dump")
        wait_for(lambda: "succeeded" in _dumped(dump, ok.id), 30, "the success in the dump")
    finally:
        dump.stop(timeout=10)
    shown = _dumped(dump, ok.id)
    assert f"tests.support.harness.slow({ok.id}) args=('events:{name}', 0.2)" in shown["received"]
    assert f"{name}@" in shown["started"]
    runtime = re.search(r"runtime=([0-9.e-]+)", shown["succeeded"])
    assert runtime and float(runtime[1]) >= 0.2
    assert "RuntimeError('this task always fails')" in _dumped(dump, failing.id)["failed"]


def _dumped(dump: Child, uuid: str) -> dict[str, str]:
    """The line `celery events --dump` printed for each event of task ``uuid``, by its type."""
    assert dump.log_path is not None
    shown: dict[str, str] = {}
    for line in dump.log_path.read_text(errors="replace").splitlines():
        for kind in ("received", "started", "succeeded", "failed"):
            if f"] task {kind}: " in line and f"({uuid})" in line:
                shown[kind] = line
    return shown


def test_flower_refuses_to_start_without_authentication(kopter):
    env = {"KOPTER_FLOWER_BASIC_AUTH": "", "KOPTER_FLOWER_AUTH": ""}
    failed = kopter("flower", "--port", "9", env=env, ok=False)
    assert "Flower needs authentication" in failed.stderr
    failed = kopter("flower", env={"KOPTER_FLOWER_BASIC_AUTH": "admin"}, ok=False)
    assert "KOPTER_FLOWER_BASIC_AUTH: entry 1 is not user:password" in failed.stderr


@needs("chromium", "chromedriver")
def test_flower_pages_in_a_browser_show_the_worker_and_task_states(workers, open_flower):
    """Headless Chromium (Debian's chromium and chromium-driver) through Selenium; screenshots
    are kept in screenshots/ of the test output directory."""
    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    from tests.support.harness import always_fails, slow

    name = f"gamma-{secrets.token_hex(3)}"
    worker = workers.start(name, "audit", app="tests.support.harness")
    workers.wait_ready(worker)
    ok = slow.apply_async((f"browser:{name}", 0), queue="audit")
    failing = always_fails.apply_async((f"browser:{name}:fails",), queue="audit")
    ok.get(timeout=60)
    wait_for(
        lambda: open_flower.tasks().get(failing.id, {}).get("state") == "FAILURE",
        60,
        "the failing task's state in Flower",
    )

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.add_argument("--window-size=1400,900")
    shots = OUTPUT / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    browser = webdriver.Chrome(options=options, service=Service(driver_path))
    try:

        def row_with(text: str) -> str:
            """The text of the table row showing ``text``, without the breaks of wrapped cells."""
            # One script call: the page re-renders its tables while it refreshes itself.
            rows = browser.execute_script(
                "return [...document.querySelectorAll('table tbody tr')].map(r => r.innerText)"
            )
            return next((t for t in map("".join, map(str.split, rows)) if text in t), "")

        browser.get(open_flower.base + "/workers")
        wait_for(lambda: "Online" in row_with(name), 30, "the worker online on the workers page")
        browser.save_screenshot(str(shots / "flower-workers.png"))

        browser.get(open_flower.base + "/tasks")
        wait_for(
            lambda: "SUCCESS" in row_with(ok.id) and "FAILURE" in row_with(failing.id),
            30,
            "both tasks with their states on the tasks page",
        )
        assert name in row_with(ok.id)
        browser.save_screenshot(str(shots / "flower-tasks.png"))
    finally:
        browser.quit()
    assert (shots / "flower-workers.png").stat().st_size > 0
