"""`kopter dev` (what `make run` runs): the whole system on one machine.

moto's server stands in for AWS on 127.0.0.1; Redis is the one at KOPTER_REDIS_URL when it
answers, else a throwaway redis-server started here. The stack is then driven the way an
operator drives production, through `kopter` and `celery` processes, so what works here is what
runs there. Ctrl-C (or SIGTERM) stops every process this started, and nothing else.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType
from urllib.parse import urlsplit

import boto3

from kopter.crossaccount import Target, assume_role
from kopter.devstack import (
    LOCAL_AWS_ENV,
    Child,
    celery_argv,
    port_open,
    redis_reachable,
    spawn,
    start_moto,
    start_redis,
    stop_all,
    wait_for_port,
)
from kopter.errors import KopterError
from kopter.queues import WORK_QUEUES
from kopter.settings import load

DEMO_TENANT = "demo"
DEMO_ACCOUNT = "111111111111"
DEMO_ROLE = f"arn:aws:iam::{DEMO_ACCOUNT}:role/kopter-demo"
DEMO_REGIONS = ("us-east-1", "eu-west-1")
DEMO_BUCKET = "kopter-demo-cloudtrail"
DEMO_FLEET = {
    "us-east-1": [("t3.micro", "web"), ("t3.micro", "web"), ("m5.large", "api")],
    "eu-west-1": [("c5.xlarge", "batch")],
}


class _Stop(Exception):
    pass


def _raise_stop(signum: int, _: FrameType | None) -> None:
    raise _Stop(signal.Signals(signum).name)


def run_dev_stack(moto_port: int, flower_port: int, state_dir: Path, smoke: bool) -> int:
    state_dir = state_dir.resolve()
    logs = state_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    children: list[Child] = []
    previous = {s: signal.signal(s, _raise_stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        env = _start_services(moto_port, state_dir, logs, children)
        _kopter(env, "bootstrap")
        _seed_demo(env)
        _start_processes(env, flower_port, logs, children)
        _show_pipeline(env)
        _say(f"flower     http://127.0.0.1:{flower_port}  (Celery events over SQS: issue #8)")
        _say(f"logs       {logs}/")
        _say(
            "try        KOPTER_AWS_ENDPOINT_URL=" + env["KOPTER_AWS_ENDPOINT_URL"] + " "
            "KOPTER_REDIS_URL=" + env["KOPTER_REDIS_URL"] + " kopter status"
        )
        if smoke:
            _say("smoke run: the stack came up and worked; stopping")
            return 0
        _say("ready      Ctrl-C stops everything")
        _watch(children)
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
    # This process seeds the demo through the local endpoint too, with the same dummy keys.
    os.environ.update(LOCAL_AWS_ENV)
    return {
        **os.environ,
        "KOPTER_AWS_ENDPOINT_URL": endpoint,
        "KOPTER_REDIS_URL": redis_url,
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


def _seed_demo(env: dict) -> None:
    """A demo tenant whose account has a small fleet and a CloudTrail bucket, in moto."""
    tenants = [
        json.loads(line)
        for line in _kopter(env, "tenants", "list", "--json", quiet=True).splitlines()
    ]
    if not any(t["name"] == DEMO_TENANT for t in tenants):
        _kopter(env, "tenants", "add", DEMO_TENANT, quiet=True)
        _kopter(
            env,
            "accounts",
            "add",
            "--tenant",
            DEMO_TENANT,
            "--account-id",
            DEMO_ACCOUNT,
            "--role-arn",
            DEMO_ROLE,
            "--regions",
            ",".join(DEMO_REGIONS),
            "--cloudtrail-bucket",
            DEMO_BUCKET,
            quiet=True,
        )
    account = json.loads(
        _kopter(env, "accounts", "list", "--tenant", DEMO_TENANT, "--json", quiet=True)
    )
    session = _demo_session(env, account["external_id"])
    endpoint = env["KOPTER_AWS_ENDPOINT_URL"]
    launched = 0
    for region, fleet in DEMO_FLEET.items():
        ec2 = session.client("ec2", region_name=region, endpoint_url=endpoint)
        if ec2.describe_instances()["Reservations"]:
            continue
        for instance_type, role in fleet:
            ec2.run_instances(
                ImageId="ami-0123456789abcdef0",
                InstanceType=instance_type,
                MinCount=1,
                MaxCount=1,
                TagSpecifications=[
                    {
                        "ResourceType": "instance",
                        "Tags": [
                            {"Key": "role", "Value": role},
                            {"Key": "kopter:backup", "Value": "7d"},
                        ],
                    }
                ],
            )
            launched += 1
    s3 = session.client("s3", region_name="us-east-1", endpoint_url=endpoint)
    s3.create_bucket(Bucket=DEMO_BUCKET)
    _say(
        f"demo       tenant {DEMO_TENANT!r}, account {DEMO_ACCOUNT} ({', '.join(DEMO_REGIONS)}), "
        f"{launched} instances launched, bucket s3://{DEMO_BUCKET}"
    )


def _demo_session(env: dict, external_id: str) -> boto3.session.Session:
    """The demo customer's own credentials in moto (as if they were working in their account)."""
    credentials = assume_role(Target(DEMO_ACCOUNT, DEMO_ROLE, external_id), load(env))
    return boto3.session.Session(
        aws_access_key_id=credentials["access_key"],
        aws_secret_access_key=credentials["secret_key"],
        aws_session_token=credentials["token"],
    )


def _start_processes(env: dict, flower_port: int, logs: Path, children: list[Child]) -> None:
    if port_open("127.0.0.1", flower_port):
        raise KopterError(f"port {flower_port} is taken: set KOPTER_DEV_FLOWER_PORT")
    worker = celery_argv(
        "worker", "-Q", ",".join(WORK_QUEUES), "-c", "2", "-n", "kopter-dev@%h", "-l", "INFO"
    )
    children.append(spawn("worker", worker, env, logs))
    children.append(spawn("beat", celery_argv("beat", "-l", "INFO"), env, logs))
    flower = celery_argv("flower", "--address=127.0.0.1", f"--port={flower_port}")
    children.append(spawn("flower", flower, env, logs))
    wait_for_port(children[-1], flower_port)
    _say(f"worker     queues {','.join(WORK_QUEUES)}  (log: {logs}/worker.log)")
    _say("beat       celery-redbeat, schedule in beat_schedule.py")


def _show_pipeline(env: dict) -> None:
    """Prove the path end to end: the CLI enqueues on SQS, the worker assumes the demo
    account's role and describes it, the result comes back through Redis."""
    _say("pipeline   checking the demo account on the worker, through SQS:")
    _kopter(
        env,
        "accounts",
        "check",
        "--tenant",
        DEMO_TENANT,
        "--account-id",
        DEMO_ACCOUNT,
        "--on-worker",
        "--timeout",
        "60",
    )


def _watch(children: list[Child]) -> None:
    while True:
        for child in children:
            if not child.alive:
                raise KopterError(f"{child.name} exited:\n{child.tail()}")
        time.sleep(1)
