"""`kopter dev` (what `make run` runs): the whole system on one machine.

moto's server stands in for AWS on 127.0.0.1; Redis is the one at KOPTER_REDIS_URL when it
answers, else a throwaway redis-server started here. The stack is then driven the way an
operator drives production, through `kopter` and `celery` processes, so what works here is what
runs there. Ctrl-C (or SIGTERM) stops every process this started, and nothing else.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from types import FrameType
from urllib.parse import urlsplit

import jwt

from kopter import demo, demohistory, times
from kopter.devstack import (
    LOCAL_AWS_ENV,
    Child,
    celery_argv,
    jwt_api_env,
    port_open,
    redis_reachable,
    spawn,
    start_api,
    start_moto,
    start_redis,
    stop_all,
    wait_for_port,
)
from kopter.errors import KopterError
from kopter.pricing.offerserver import SAMPLE_OFFERS, OfferServer
from kopter.queues import WORK_QUEUES
from kopter.settings import load
from kopter.tables import bind

DEV_TOKEN_SECONDS = 3600
DEV_TOKEN_RENEW_SECONDS = 300


class _Stop(Exception):
    pass


def _raise_stop(signum: int, _: FrameType | None) -> None:
    raise _Stop(signal.Signals(signum).name)


def run_dev_stack(
    moto_port: int, flower_port: int, api_port: int, state_dir: Path, smoke: bool
) -> int:
    state_dir = state_dir.resolve()
    logs = state_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    children: list[Child] = []
    previous = {s: signal.signal(s, _raise_stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        env = _start_services(moto_port, state_dir, logs, children)
        _kopter(env, "bootstrap")
        trail, tenant_id = seed_demo(env)
        _start_processes(env, flower_port, logs, children)
        show_pipeline(env, trail, tenant_id)
        app = _start_api(env, api_port, logs, children, tenant_id)
        _say(f"flower     http://127.0.0.1:{flower_port}  (workers and tasks; no login locally)")
        app.show()
        _say(f"logs       {logs}/")
        _say(
            "try        export KOPTER_AWS_ENDPOINT_URL=" + env["KOPTER_AWS_ENDPOINT_URL"] + " "
            "KOPTER_REDIS_URL=" + env["KOPTER_REDIS_URL"] + " AWS_ACCESS_KEY_ID=testing "
            "AWS_SECRET_ACCESS_KEY=testing; kopter status; kopter audit --tenant demo"
        )
        if smoke:
            _say("smoke run: the stack came up and worked; stopping")
            return 0
        _say("ready      Ctrl-C stops everything")
        _watch(children, app)
        return 1
    except _Stop as stop:
        _say(f"{stop}: stopping")
        return 0
    except KopterError as e:
        _say(f"error: {e}")
        return 1
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        # Workers, beat and Flower first, while AWS and Redis still answer their last calls.
        services = [c for c in children if c.name in ("moto", "redis")]
        stop_all([c for c in children if c not in services])
        stop_all(services)
        if children:
            _say(f"stopped {', '.join(c.name for c in reversed(children))}")


def _say(line: str) -> None:
    print(f"kopter dev: {line}", flush=True)


def _start_services(moto_port: int, state_dir: Path, logs: Path, children: list[Child]) -> dict:
    endpoint = f"http://127.0.0.1:{moto_port}"
    children.append(start_moto(moto_port, logs))
    _say(f"aws        {endpoint}  (moto's server)")
    redis_url = os.environ.get("KOPTER_REDIS_URL") or "redis://127.0.0.1:6379/0"
    if redis_reachable(redis_url):
        _say(f"redis      {redis_url}  (already running)")
    else:
        parts = urlsplit(redis_url)
        if parts.hostname not in ("127.0.0.1", "localhost"):
            raise KopterError(f"KOPTER_REDIS_URL={redis_url} does not answer")
        port = parts.port or 6379
        children.append(start_redis(port, state_dir / "redis", logs))
        _say(f"redis      {redis_url}  (started here)")
    pricing_url = os.environ.get("KOPTER_PRICING_URL")
    if not pricing_url:
        # A thread of this process: it lives exactly as long as the stack.
        server = OfferServer(SAMPLE_OFFERS).__enter__()
        pricing_url = server.url
        _say(f"prices     {pricing_url}  (kopter's sample price list, as AWS serves it)")
    # This process seeds the demo through the local endpoint too, with the same dummy keys.
    os.environ.update(LOCAL_AWS_ENV)
    return {
        **os.environ,
        "KOPTER_AWS_ENDPOINT_URL": endpoint,
        "KOPTER_REDIS_URL": redis_url,
        "KOPTER_PRICING_URL": pricing_url,
        # One demo account: its describer run need not be spread over minutes.
        "KOPTER_DESCRIBE_SPREAD_SECONDS": os.environ.get("KOPTER_DESCRIBE_SPREAD_SECONDS", "0"),
        "PYTHONUNBUFFERED": "1",
    }


def _kopter(env: dict, *args: str, quiet: bool = False) -> str:
    argv = [sys.executable, "-m", "kopter", *args]
    result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise KopterError(f"`kopter {' '.join(args)}` failed: {result.stderr.strip()}")
    if not quiet:
        for line in result.stdout.splitlines():
            _say(f"  {line}")
    return result.stdout


def _start_processes(env: dict, flower_port: int, logs: Path, children: list[Child]) -> None:
    if port_open("127.0.0.1", flower_port):
        raise KopterError(f"port {flower_port} is taken: set KOPTER_DEV_FLOWER_PORT")
    worker = celery_argv(
        "worker", "-Q", ",".join(WORK_QUEUES), "-c", "2", "-n", "kopter-dev@%h", "-l", "INFO"
    )
    children.append(spawn("worker", worker, env, logs))
    children.append(spawn("beat", celery_argv("beat", "-l", "INFO"), env, logs))
    # Flower on the control plane (tasks/controlplane.py); no login on this machine's stack.
    flower = [sys.executable, "-m", "kopter", "flower", "--no-auth", f"--port={flower_port}"]
    children.append(spawn("flower", flower, env, logs))
    wait_for_port(children[-1], flower_port)
    _say(f"worker     queues {','.join(WORK_QUEUES)}  (log: {logs}/worker.log)")
    _say("beat       celery-redbeat, schedule in beat_schedule.py")


def seed_demo(env: dict) -> tuple[demo.DemoTrail, str]:
    """The demo tenant and account, its story in moto, and its past in kopter's tables (the
    describer's hourly runs: written by hand, as moto knows only the present); the tenant's id.
    `show_pipeline` then drives them through the workers (as the image's test does too)."""
    if not any(t["name"] == demo.TENANT for t in _rows(env, "tenants", "list")):
        _kopter(env, "tenants", "add", demo.TENANT, quiet=True)
        _kopter(
            env,
            "accounts",
            "add",
            "--tenant",
            demo.TENANT,
            "--account-id",
            demo.ACCOUNT,
            "--role-arn",
            demo.ROLE,
            "--regions",
            ",".join(demo.REGIONS),
            "--cloudtrail-bucket",
            demo.BUCKET,
            quiet=True,
        )
    [account] = _rows(env, "accounts", "list", "--tenant", demo.TENANT)
    settings = load(env)
    bind(settings)  # the demo's past is written from here (kopter.demohistory)
    trail = demo.seed(settings, account["external_id"])
    _say(
        f"demo       tenant {demo.TENANT!r}, account {demo.ACCOUNT} ({', '.join(demo.REGIONS)}), "
        f"{len(trail.fleet)} servers, {len(trail.keys)} CloudTrail log files of its last days "
        f"in s3://{demo.BUCKET}/"
    )
    changed = demohistory.backdate_fleet(account["tenant_id"], trail, settings)
    _say(
        f"history    the describer's {demohistory.HOURS} past hourly runs, written by hand (moto "
        f"knows only the present): {changed} saw the fleet change"
    )
    return trail, account["tenant_id"]


def show_pipeline(env: dict, trail: demo.DemoTrail, tenant_id: str) -> None:
    """Prove the paths end to end. The CLI enqueues an account check on SQS, the worker assumes
    the demo account's role and describes it, the result comes back through Redis. Then S3's
    notifications of the demo's CloudTrail log files (moto does not send them across accounts,
    so this plays S3's part) go to the raw queue, the worker's bridge and ingest task take them,
    and the records come back through `kopter audit`, bob's judged by the detection rules as
    they were written (`kopter findings`). The pricing worker imports the sample
    price list; the story's past hours (described by hand as the demo was seeded) are costed;
    the worker describes the fleet now and costs this hour; the daily audit runs; and the
    notifications of it all are listed."""
    _say("pipeline   checking the demo account on the worker, through SQS:")
    _kopter(
        env,
        "accounts",
        "check",
        "--tenant",
        demo.TENANT,
        "--account-id",
        demo.ACCOUNT,
        "--on-worker",
        "--timeout",
        "60",
    )
    settings = load(env)
    demo.notify(settings, trail)
    _say(f"pipeline   S3 notified cloudtrail-notifications of {len(trail.keys)} files; ingesting:")
    deadline, left = time.monotonic() + 180, trail.keys
    while left := demohistory.pending(left):
        if time.monotonic() > deadline:
            raise KopterError(f"{len(left)} of the demo's log files were not ingested in 180s")
        time.sleep(0.5)
    _say(f"pipeline   {trail.records} records ingested; bob's calls in the audit log:")
    _kopter(env, "audit", "--tenant", demo.TENANT, "--user", demo.BOB)
    _say("pipeline   the price list, imported by the worker for the demo's regions:")
    _kopter(env, "run", "pricing", "--wait", "--timeout", "120", quiet=True)
    _kopter(env, "prices", "--region", demo.REGIONS[0], "--os", "Linux")
    _say(f"history    the aggregator costs the past {demohistory.HOURS} hours, oldest first:")
    history = demohistory.cost_history(tenant_id, trail, settings)
    _say(
        f"history    those {history.hours} hours cost "
        f"{history.cost_usd:.2f} USD, notices: {', '.join(n.kind for n in history.notices)}"
    )
    _say("pipeline   the fleet described on the worker now, this hour costed, the daily audit:")
    _kopter(env, "run", "describer", "--tenant", demo.TENANT, "--wait", quiet=True)
    hour = trail.start_hour.isoformat()
    _kopter(env, "run", "aggregator", "--tenant", demo.TENANT, "--hour", hour, "--wait", quiet=True)
    audit = _kopter(env, "run", "audit", "--tenant", demo.TENANT, "--wait", quiet=True)
    notified = json.loads(audit[audit.index("{") :])["notified"]
    since = times.stamp(trail.start_hour - timedelta(hours=8))
    _kopter(env, "graph", "--tenant", demo.TENANT, "--since", since)
    _say("pipeline   the notifications kopter raised:")
    findings = _rows(env, "findings", "--tenant", demo.TENANT)  # a notice each, raised at ingest
    expected = len(history.notices) + notified + len(findings)
    deadline = time.monotonic() + 60
    while True:  # the notices are stored by the notifications worker
        shown = _kopter(env, "notifications", "--tenant", demo.TENANT, quiet=True).splitlines()
        if len(shown) > expected:  # a header line, then a row each
            break
        if time.monotonic() > deadline:
            raise KopterError(f"the demo's {expected} notifications were not stored in 60s")
        time.sleep(0.5)
    for line in shown:
        _say(f"  {line}")


def _rows(env: dict, *args: str) -> list[dict]:
    return [json.loads(line) for line in _kopter(env, *args, "--json", quiet=True).splitlines()]


class SignedInApp:
    """The web app as the demo tenant: a URL holding a short-lived token minted here with the
    API's key (in the fragment, which the browser never sends), renewed before it expires."""

    def __init__(self, port: int, key: str, tenant_id: str) -> None:
        self.port, self.key, self.tenant_id = port, key, tenant_id
        self.expires = 0.0

    def show(self) -> None:
        self.expires = time.time() + DEV_TOKEN_SECONDS
        claims = {"sub": self.tenant_id, "iat": int(time.time()), "exp": int(self.expires)}
        token = jwt.encode(claims, self.key, "HS256")
        _say(
            f"app        http://127.0.0.1:{self.port}/#token={token}  (the web app, signed in as "
            f"{demo.TENANT!r} for {DEV_TOKEN_SECONDS // 60} minutes; a new URL comes before then)"
        )

    def renew_if_due(self) -> None:
        if time.time() > self.expires - DEV_TOKEN_RENEW_SECONDS:
            self.show()


def _start_api(
    env: dict, port: int, logs: Path, children: list[Child], tenant_id: str
) -> SignedInApp:
    """`kopter api` with bearer tokens signed by a key made for this run."""
    if port_open("127.0.0.1", port):
        raise KopterError(f"port {port} is taken: set KOPTER_DEV_API_PORT")
    key = secrets.token_urlsafe(32)
    children.append(start_api("api", port, {**env, **jwt_api_env(key)}, logs))
    return SignedInApp(port, key, tenant_id)


def _watch(children: list[Child], app: SignedInApp) -> None:
    while True:
        app.renew_if_due()
        for child in children:
            if not child.alive:
                raise KopterError(f"{child.name} exited:\n{child.tail()}")
        time.sleep(1)
