"""The customers' web app in headless Chromium (Debian's chromium and chromium-driver, through
Selenium), served by a real `kopter api`, over a tenant of two accounts whose data kopter's own
ingest, describer, price import and aggregator wrote to moto (but for the instance states the
describer compares, written by hand: moto dates every launch now, and the pages need days behind
them; see ``web_tenant``): every page shows it, filters and pages round-trip through the URL,
mark-read survives a reload, an expired or refused token goes back to sign-in, no console error,
axe-core finds nothing, every control is reached by Tab. Screenshots of every page are kept in
screenshots/ of the test output directory."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from kopter import accounts
from kopter.reads import costs
from tests.conftest import OUTPUT, needs, wait_for
from tests.support.webapp import (
    BOB,
    READY,
    WebApi,
    WebTenant,
    api_get,
    axe_script,
    browser_paths,
    check_accessible,
    chromium,
    errors_in_console,
    reached_by_tab,
    show,
    signed_in,
    stale,
    texts,
    token,
    wait_ready,
    web_api,
    web_tenant,
)

PATHS = browser_paths()
pytestmark = [pytest.mark.long, needs("chromium", "chromedriver", "npm")]
SHOTS = OUTPUT / "screenshots"
REFUSED = re.compile(
    r"(\S+) - Failed to load resource: the server responded with a status of 401 \(Unauthorized\)"
)
TEMPLATE_URL = "https://kopter-onboarding.s3.amazonaws.com/kopter-customer.yaml"  # never fetched
# Not the machine's (UTC) nor the API's: times must follow the browser. No daylight saving, so
# no date in the test: its offset and name are the same all year.
ZONE, ZONE_OFFSET, ZONE_NAME = "Asia/Kolkata", timedelta(hours=5, minutes=30), "GMT+5:30"


@pytest.fixture(scope="module")
def axe_source() -> str:
    return axe_script(OUTPUT)


@pytest.fixture(scope="module")
def tenant(tmp_path_factory: pytest.TempPathFactory) -> WebTenant:
    return web_tenant(tmp_path_factory.mktemp("web"), days=2, audit_records=60)


@pytest.fixture(scope="module")
def server(tenant: WebTenant) -> Iterator[WebApi]:
    with web_api(OUTPUT / "logs", {"KOPTER_ONBOARDING_TEMPLATE_URL": TEMPLATE_URL}) as api:
        yield api


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    assert PATHS
    with chromium(PATHS) as b:
        b.execute_cdp_cmd("Emulation.setTimezoneOverride", {"timezoneId": ZONE})
        yield b


def refused_calls(browser: Any) -> list[str]:
    """The paths of the calls Chromium logged as refused with a 401; any other error, whole."""
    return sorted(
        urlsplit(m[1]).path if (m := REFUSED.fullmatch(e["message"])) else e["message"]
        for e in errors_in_console(browser)
    )


def test_every_page_shows_the_tenants_data(browser, server, tenant, axe_source):
    SHOTS.mkdir(parents=True, exist_ok=True)
    signed_in(browser, server, tenant.id)
    since, until = tenant.first_hour, tenant.first_hour + timedelta(hours=tenant.hours)
    span = f"since={since:%Y-%m-%dT%H:%M:%SZ}&until={until:%Y-%m-%dT%H:%M:%SZ}"

    # Cost: the exact total of the aggregator's points, the jump with bob, the missing prices.
    show(browser, server, "cost", span)
    points = [costs.view(c) for c in costs.query(costs.CostQuery(tenant.id, since, until))]
    assert len(points) == tenant.hours
    total = sum((Decimal(p["cost_usd"]) for p in points), Decimal(0))
    assert browser.find_element("id", "total").text == f"${total:,.2f}"
    [jump] = texts(browser, "section.jumps li")
    assert "i-0fffffffffffffff6" in jump and BOB in jump
    missing = browser.execute_script(  # textContent: the list is folded when long
        "return [...document.querySelectorAll('section.warning li')].map(e => e.textContent)"
    )
    assert len(missing) == tenant.hours and all("1 instance without a price" in m for m in missing)
    first_time = browser.find_element("css selector", "p.total time")
    assert first_time.get_attribute("title") == f"{since:%Y-%m-%dT%H:%M:%SZ} (UTC)"
    local = since + ZONE_OFFSET
    shown_at = f"{local:%b} {local.day}, {local.year}, {local:%I:%M:%S}"
    assert first_time.text.startswith(shown_at) and first_time.text.endswith(ZONE_NAME)
    browser.find_element("css selector", "figure.graph canvas")
    browser.set_window_size(1400, 1240)  # the graph, the missing prices and the jump in one
    browser.save_screenshot(str(SHOTS / "web-cost.png"))
    browser.set_window_size(1400, 1000)
    check_accessible(browser, axe_source, "cost")

    # Split by instance type through the form: the URL keeps it, the sums are the API's.
    from selenium.webdriver.support.ui import Select

    Select(browser.find_element("id", "f-by")).select_by_value("instance-type")
    stale(browser)
    browser.find_element("css selector", "form.filters button[type=submit]").click()
    wait_for(lambda: "by=instance-type" in browser.current_url, 10, "the split in the URL")
    wait_ready(browser, "cost")
    by_type: dict[str, Decimal] = {}
    split = costs.CostQuery(tenant.id, since, until, "instance-type")
    for p in map(costs.view, costs.query(split)):
        by_type[p["instance_type"]] = by_type.get(p["instance_type"], 0) + Decimal(p["cost_usd"])
    shown = dict(row.split("\t") for row in texts(browser, "table tbody tr") if "\t" in row)
    assert shown == {k: f"${v:,.2f}" for k, v in by_type.items()}
    browser.save_screenshot(str(SHOTS / "web-cost-by-instance-type.png"))
    browser.refresh()
    wait_ready(browser, "cost")
    assert Select(browser.find_element("id", "f-by")).first_selected_option.text == "Instance type"

    # Audit log: pages of 25 followed to the end are every record, each once, as the API has it.
    show(browser, server, "audit", "limit=25")
    seen: list[str] = []
    pages = 0
    while True:
        pages += 1
        seen += browser.execute_script(
            "return [...document.querySelectorAll('tbody tr')].map(r => "
            "r.querySelector('dd').textContent)"
        )
        links = browser.find_elements("css selector", "a[rel=next]")
        if not links:
            break
        stale(browser)
        links[0].click()
        wait_for(lambda: "cursor=" in browser.current_url, 10, "the next page")
        wait_ready(browser, "audit")
        if pages == 2:
            # A reload shows the same page: the cursor is in the URL.
            before = texts(browser, "tbody tr")
            browser.refresh()
            wait_ready(browser, "audit")
            assert texts(browser, "tbody tr") == before
    api_ids = [
        e["event_id"] for e in api_get(server, tenant.id, "/v1/audit/aws", limit=1000)["items"]
    ]
    assert seen == api_ids and len(seen) == tenant.audit_records and pages == 3
    # A filter from the form, and a record's request and response.
    show(browser, server, "audit")
    name = api_get(server, tenant.id, "/v1/audit/aws", limit=1)["items"][0]["event_name"]
    browser.find_element("id", "f-event_name").send_keys(name)
    stale(browser)
    browser.find_element("css selector", "form.filters button[type=submit]").click()
    wait_for(lambda: f"event_name={name}" in browser.current_url, 10, "the filter in the URL")
    wait_ready(browser, "audit")
    filtered = api_get(server, tenant.id, "/v1/audit/aws", event_name=name, limit=100)["items"]
    assert texts(browser, "tbody tr summary") == [name] * len(filtered)
    browser.find_element("css selector", "tbody summary").click()
    assert "Request" in browser.find_element("css selector", "tbody details").text
    request = browser.find_element("css selector", "tbody details pre").text
    assert request == (
        json.dumps(json.loads(filtered[0]["request"]), indent=2) if filtered[0]["request"] else "—"
    )
    browser.save_screenshot(str(SHOTS / "web-audit.png"))
    check_accessible(browser, axe_source, "audit")
    reached_by_tab(browser)

    # EC2 events of both accounts: bob's launch, seen by the describer and by CloudTrail (his
    # call, ingested), is one event with him.
    show(browser, server, "events")
    events = api_get(server, tenant.id, "/v1/ec2/events")["items"]
    rows = texts(browser, "tbody tr")
    accounts_column = [r.split("\t")[3] for r in rows]
    assert accounts_column == [e["account_id"] for e in events]
    assert set(accounts_column) == {tenant.account, tenant.other_account}
    [launch] = [r for r in rows if tenant.jump_instance in r and "launched" in r]
    assert BOB in launch and launch.endswith("cloudtrail, describer")
    # The account filter from the URL: that account's events only.
    show(browser, server, "events", f"account={tenant.account}")
    mine = api_get(server, tenant.id, "/v1/ec2/events", account=tenant.account)["items"]
    assert 0 < len(mine) < len(events)
    rows = texts(browser, "tbody tr")
    assert [r.split("\t")[3] for r in rows] == [tenant.account] * len(mine)
    browser.save_screenshot(str(SHOTS / "web-events.png"))
    check_accessible(browser, axe_source, "events")

    # Accounts: both, with health and last success.
    show(browser, server, "accounts")
    rows = texts(browser, "tbody tr")
    assert sorted(r.split("\t")[0] for r in rows) == sorted([tenant.account, tenant.other_account])
    assert all(r.split("\t")[1] == "healthy" for r in rows)
    # The link that creates each account's stack carries its ExternalId.
    links = browser.execute_script(
        "return Object.fromEntries([...document.querySelectorAll('tbody tr')]"
        ".map(r => [r.cells[0].innerText, r.querySelector('a').href]))"
    )
    listed = api_get(server, tenant.id, "/v1/accounts")["items"]
    assert links == {a["account_id"]: a["onboarding_link"] for a in listed}
    link = links[tenant.account]
    assert "/cloudformation/home?region=" in link
    query = parse_qs(urlsplit(link.split("#/stacks/quickcreate", 1)[1]).query)
    assert query["templateURL"] == [TEMPLATE_URL]
    external_id = accounts.get_account(tenant.id, tenant.account).external_id
    assert query["param_ExternalId"] == [external_id]
    browser.save_screenshot(str(SHOTS / "web-accounts.png"))
    check_accessible(browser, axe_source, "accounts")

    # Notifications: the aggregator's price-missing and cost-jump; mark one read, reload.
    show(browser, server, "notifications")
    unread = api_get(server, tenant.id, "/v1/notifications", unread="true")["items"]
    # A price missing on each of the two days, and bob's jump.
    assert sorted(n["kind"] for n in unread) == ["cost-jump", "price-missing", "price-missing"]
    wait_for(lambda: texts(browser, "#unread") == [str(len(unread))], READY, "the unread count")
    check_accessible(browser, axe_source, "notifications")
    first = browser.find_element("css selector", "li.unread button")
    title = first.get_attribute("aria-label")
    first.click()
    wait_for(lambda: texts(browser, "#unread") == [str(len(unread) - 1)], READY, "one fewer")
    browser.refresh()
    wait_ready(browser, "notifications")
    read = [t for t in texts(browser, "ul.notifications > li") if "Read " in t]
    assert len(read) == 1 and title.removeprefix("Mark read: ") in read[0]
    show(browser, server, "notifications", "unread=true")
    assert len(texts(browser, "ul.notifications > li")) == len(unread) - 1
    browser.save_screenshot(str(SHOTS / "web-notifications.png"))

    assert errors_in_console(browser) == []


def test_an_expired_or_refused_token_goes_back_to_sign_in(browser, server, tenant, axe_source):
    SHOTS.mkdir(parents=True, exist_ok=True)
    browser.get(f"{server.base}/#token={token(tenant.id, seconds=-60)}")
    wait_ready(browser, "sign-in")
    assert browser.find_element("tag name", "h1").text == "Sign in"
    assert "expired" in browser.find_element("id", "sign-in-reason").text
    browser.save_screenshot(str(SHOTS / "web-sign-in.png"))
    check_accessible(browser, axe_source, "sign-in")
    assert errors_in_console(browser) == []

    # Signed by another key: the browser cannot tell; the API's 401 brings sign-in back.
    browser.get(f"{server.base}/#token={token(tenant.id, key='another-key-' * 4)}")
    wait_ready(browser, "sign-in")
    assert "not valid" in browser.find_element("id", "sign-in-reason").text
    # Chromium logs each call the API refused itself, the cost page's two and the unread count's
    # (all sent before the first answer), and nothing else.
    assert refused_calls(browser) == ["/v1/notifications", "/v1/notifications", "/v1/price-graph"]

    # A token that expires while the app is open (its successor, already expired, put in its
    # place): the next page goes to sign-in.
    browser.get(f"{server.base}/#token={token(tenant.id)}")
    wait_ready(browser, "cost")
    expired = token(tenant.id, seconds=-1)
    browser.execute_script("sessionStorage.setItem('kopter.token', arguments[0])", expired)
    browser.find_element("link text", "Accounts").click()
    wait_ready(browser, "sign-in")
    assert "expired" in browser.find_element("id", "sign-in-reason").text
