"""What the web app's tests and benchmark share: the web app's locked npm packages (installed by
npm from web/package-lock.json, which checks each package's integrity), a real `kopter api`
process serving the app, headless Chromium, and a tenant whose data comes from kopter's own
ingest, describer, price import and aggregator against moto (the instance states the describer
compares are written by hand: ``web_tenant`` says why), and how a test shows a page and reads
it, checks it with axe-core and by Tab."""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import jwt

from kopter.devstack import Child, free_port, jwt_api_env, start_api
from tests.support.samples import ROOT

WEB = ROOT / "web"
JWT_KEY = secrets.token_urlsafe(32)
# How long a page may take to show what the API read: a read over moto took 6.4 s on a loaded
# machine, and a page makes several.
READY = 30
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1400,1000",
)


def node_modules(output: Path) -> Path:
    """`npm ci` of web/'s lockfile into ``output`` (once)."""
    target = output / "web-npm"
    lock = (WEB / "package-lock.json").read_bytes()
    if (
        (target / "package-lock.json").is_file()
        and (target / "package-lock.json").read_bytes() == lock
        and (target / "node_modules").is_dir()
    ):
        return target / "node_modules"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for name in ("package.json", "package-lock.json"):
        shutil.copy(WEB / name, target / name)
    subprocess.run(
        ["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=target,
        check=True,
        capture_output=True,
        timeout=300,
    )
    return target / "node_modules"


def browser_paths() -> tuple[str, str] | None:
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    return (chromium, driver) if chromium and driver else None


@contextmanager
def chromium(paths: tuple[str, str]) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = paths[0]
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(options=options, service=Service(paths[1]))
    try:
        yield browser
    finally:
        browser.quit()


def token(tenant_id: str, seconds: int = 600, key: str = JWT_KEY) -> str:
    now = int(time.time())
    return jwt.encode({"sub": tenant_id, "iat": now, "exp": now + seconds}, key, "HS256")


@dataclass
class WebApi:
    child: Child
    base: str


@contextmanager
def web_api(log_dir: Path, env: dict[str, str] | None = None) -> Iterator[WebApi]:
    """`kopter api` in jwt mode (HS256), serving the app at /."""
    port = free_port()
    settings = {**os.environ, **jwt_api_env(JWT_KEY), **(env or {})}
    child = start_api(f"api-web-{port}", port, settings, log_dir, cwd=ROOT)
    try:
        yield WebApi(child, f"http://127.0.0.1:{port}")
    finally:
        child.stop()


def wait_ready(browser: Any, page: str, timeout: float = READY) -> None:
    """Until the app has rendered ``page`` (main's data-state), or its error."""
    deadline = time.monotonic() + timeout
    state = None
    while time.monotonic() < deadline:
        state = browser.execute_script(
            "const m = document.getElementById('main');"
            "return m && m.dataset.page + ':' + m.dataset.state"
        )
        if state == f"{page}:ready":
            return
        if state and state.endswith(":error"):
            text = browser.find_element("id", "main").text
            raise AssertionError(f"the {page} page failed: {text}")
        time.sleep(0.05)
    raise AssertionError(f"the {page} page was not ready within {timeout}s (state {state})")


# --- the browser's side of a page: shown, read, checked ----------------------------------------


def axe_script(output: Path) -> str:
    """axe-core, from the web app's lockfile."""
    return (node_modules(output) / "axe-core" / "axe.min.js").read_text()


def api_get(server: WebApi, tenant_id: str, path: str, **params: Any) -> Any:
    """A GET of the read API as the tenant: its answer, which must be a 200."""
    headers = {"Authorization": f"Bearer {token(tenant_id)}"}
    reply = httpx.get(server.base + path, params=params, headers=headers, timeout=30)
    assert reply.status_code == 200, reply.text
    return reply.json()


def show(browser: Any, server: WebApi, page: str, query: str = "") -> None:
    browser.get(f"{server.base}/#/{page}{'?' + query if query else ''}")
    wait_ready(browser, page)


def stale(browser: Any) -> None:
    """Mark the page shown as old, so that waiting for ready waits for the next one."""
    browser.execute_script("document.getElementById('main').dataset.state = 'stale'")


def texts(browser: Any, css: str) -> list[str]:
    return browser.execute_script(
        "return [...document.querySelectorAll(arguments[0])].map(e => e.innerText.trim())", css
    )


def errors_in_console(browser: Any) -> list[dict[str, Any]]:
    return [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]


def check_accessible(browser: Any, axe: str, page: str) -> None:
    browser.execute_script(axe)
    result = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document).then(r => done(JSON.stringify(r.violations)), e => done(String(e)));"
    )
    violations = json.loads(result)
    assert violations == [], f"{page}: " + "; ".join(
        f"{v['id']}: {[n['target'] for n in v['nodes']]}" for v in violations
    )


def reached_by_tab(browser: Any) -> None:
    """Every link, button, input, select, textarea and summary gets the focus by Tab alone."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    controls = browser.execute_script(
        "const all = [...document.querySelectorAll("
        "  'a[href], button, input, select, textarea, summary')];"
        "all.forEach((e, i) => e.dataset.tabProbe = i);"
        # Not hidden (nor in a closed <details>, which Tab passes until it is opened).
        "return all.filter(e => e.checkVisibility()).map(e => e.dataset.tabProbe);"
    )
    browser.execute_script("document.activeElement.blur(); window.scrollTo(0, 0)")
    focused = set()
    for _ in range(3 * len(controls) + 20):  # other stops too: scrollable <pre>s
        ActionChains(browser).send_keys(Keys.TAB).perform()
        probe = browser.execute_script("return document.activeElement.dataset.tabProbe")
        if probe is not None:
            focused.add(probe)
        if focused >= set(controls):
            break
    missed = set(controls) - focused
    assert not missed, browser.execute_script(
        "return arguments[0].map(i => document.querySelector(`[data-tab-probe='${i}']`).outerHTML)",
        sorted(missed),
    )


def signed_in(browser: Any, server: WebApi, tenant_id: str) -> None:
    browser.get(f"{server.base}/#token={token(tenant_id)}")
    wait_ready(browser, "cost")
    assert "#token" not in browser.current_url  # out of the address bar and the history


# --- a tenant's data, from kopter's own pipeline functions ------------------------------------

REGION = "sa-east-1"
BOB = "arn:aws:iam::123456789012:user/bob"


@dataclass(frozen=True)
class WebTenant:
    id: str
    account: str  # the fleet, bob's jump and the CloudTrail log
    other_account: str  # one instance: what the account filters leave out
    first_hour: datetime
    hours: int
    audit_records: int
    jump_instance: str


def web_tenant(tmp: Path, days: int, audit_records: int) -> WebTenant:
    """A tenant with two accounts in REGION: the price list imported (`kopter pricing import`),
    fleets described, ``days`` of hours costed by the aggregator (a price missing every hour; on
    the last day at 10:00 bob launches a Windows c5.xlarge and stops it an hour later: a cost
    jump), ``audit_records`` CloudTrail records ingested, bob's two calls among them.

    Written by hand: the instance states kopter's describer compares and records
    (``describer.record``, as its task does with what DescribeInstances returned), since moto
    dates every launch now and the pages need days behind them. Everything else is kopter's:
    the describer's rows and events, CloudTrail's events (bob's launch and stop through the
    ingest, joined with the describer's), the costs, the notifications and the audit log."""
    from kopter import accounts, cache
    from kopter.cloudtrail import ingest
    from kopter.costs.aggregator import aggregate_hour
    from kopter.ec2 import describer
    from kopter.ec2.instances import InstanceState
    from kopter.notifications import deliver
    from kopter.pricing.cache import PriceCache
    from kopter.settings import get_settings
    from tests.support.factories import log_records
    from tests.support.offers import SMALL_FLEET_PRICES, write_offer

    # A jump of a few dollars counts here (the default asks for 1 USD more).
    settings = dataclasses.replace(get_settings(), cost_jump_min_usd=Decimal("0.1"))
    identity = f"us-east-1:{secrets.token_hex(8)}"
    tenant = accounts.add_tenant(f"web-{secrets.token_hex(3)}", identity)
    account, other = ("".join(secrets.choice("0123456789") for _ in range(12)) for _ in "ab")
    for account_id in (account, other):
        role = f"arn:aws:iam::{account_id}:role/kopter"
        accounts.add_account(tenant, accounts.AccountRequest(account_id, role, (REGION,)))
    offer = write_offer(tmp / "offer.json", REGION, "20261120000000", SMALL_FLEET_PRICES)
    subprocess.run(
        [sys.executable, "-m", "kopter", "pricing", "import", str(offer), "--region", REGION],
        check=True,
        capture_output=True,
        timeout=120,
        cwd=ROOT,
    )

    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    first = today - timedelta(days=days)

    def state(
        instance_id: str,
        itype: str,
        launched: datetime,
        platform: str = "Linux/UNIX",
        stopped: datetime | None = None,
    ) -> InstanceState:
        return InstanceState(
            instance_id=instance_id,
            region=REGION,
            state="stopped" if stopped else "running",
            instance_type=itype,
            platform=platform,
            tenancy="default",
            lifecycle="on-demand",
            availability_zone=f"{REGION}a",
            launch_time=launched,
            transition_time=stopped,
        )

    fleet = [
        state("i-0aaaaaaaaaaaaaaa1", "m5.large", first - timedelta(days=2)),
        state("i-0bbbbbbbbbbbbbbb2", "t3.micro", first - timedelta(days=2)),
        state("i-0ccccccccccccccc3", "x9.huge", first - timedelta(days=2)),  # no price
    ]
    describer.record(identity, account, REGION, fleet, first, settings)
    other_fleet = [state("i-0ddddddddddddddd4", "t3.micro", first - timedelta(days=2))]
    describer.record(identity, other, REGION, other_fleet, first, settings)
    jump_at = today - timedelta(days=1) + timedelta(hours=10)
    jumper = state("i-0fffffffffffffff6", "c5.xlarge", jump_at, platform="Windows")
    describer.record(identity, account, REGION, [*fleet, jumper], jump_at, settings)
    stop_at = jump_at + timedelta(hours=1)
    stopped = state(jumper.instance_id, "c5.xlarge", jump_at, "Windows", stopped=stop_at)
    describer.record(identity, account, REGION, [*fleet, stopped], stop_at, settings)

    calls = _bob_launches_and_stops(account, jumper.instance_id, jump_at, stop_at)
    log = [
        *log_records(audit_records - len(calls), account, today - timedelta(days=1), seed=7),
        *calls,
    ]
    document = json.dumps({"Records": log}).encode()
    ingest.ingest_document(
        document, identity, (account, other), "s3://web/log.json", settings, lambda _: None
    )

    prices = PriceCache(cache.client(settings), settings.prefix).on_demand
    for hour in range(days * 24):
        result = aggregate_hour(identity, first + timedelta(hours=hour), prices, settings)
        for notice in result.notices:
            deliver(notice, settings)
    return WebTenant(identity, account, other, first, days * 24, audit_records, jumper.instance_id)


def _bob_launches_and_stops(
    account: str, instance_id: str, launched: datetime, stopped: datetime
) -> list[dict[str, Any]]:
    """CloudTrail's records of bob's RunInstances and StopInstances of ``instance_id``."""
    instances = {"items": [{"instanceId": instance_id}]}
    calls = (
        ("RunInstances", launched, {"instanceType": "c5.xlarge"}, {"instancesSet": instances}),
        ("StopInstances", stopped, {"instancesSet": instances}, None),
    )
    return [
        {
            "eventVersion": "1.11",
            "eventTime": f"{when:%Y-%m-%dT%H:%M:%SZ}",
            "eventID": str(uuid.uuid4()),
            "eventSource": "ec2.amazonaws.com",
            "eventName": name,
            "awsRegion": REGION,
            "recipientAccountId": account,
            "userIdentity": {"type": "IAMUser", "arn": BOB},
            "requestParameters": request,
            "responseElements": response,
        }
        for name, when, request, response in calls
    ]
