"""The web app's Rules and Channels pages in headless Chromium (as in tests/test_web.py), served by
a real `kopter api` over a tenant whose real StopLogging record kopter's ingest judged: the
finding is listed with each rule that found it and its author; the tenant's rules are listed as
the API lists them; a Sigma rule pasted into the form is added and listed as the tenant's, then
switched off from the keyboard, which the API and a reload then say; a rule kopter would not run
shows the API's refusal and nothing is stored; a switch pressed after the session expired goes to
sign-in. Channels: a webhook added (the secret kopter made shown that once, the URL's query
never), an email address added, a refusal shown, a channel removed. No other console error,
axe-core finds nothing, Tab reaches every control."""

from __future__ import annotations

import json
import re
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from kopter import accounts
from kopter.cloudtrail import ingest
from kopter.settings import get_settings
from tests.conftest import OUTPUT, needs, new_account_id, wait_for
from tests.support.factories import of_account
from tests.support.samples import STRATUS_DIR
from tests.support.webapp import (
    READY,
    WebApi,
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
)

PATHS = browser_paths()
pytestmark = [pytest.mark.long, needs("chromium", "chromedriver", "npm")]
SHOTS = OUTPUT / "screenshots"
SOURCES = {"kopter": "kopter", "sigma": "SigmaHQ", "tenant": "Yours"}  # as the page names them
RULE = """title: Trail deleted by a user
id: {id}
author: Acme SOC
level: {level}
logsource:
    product: aws
    service: cloudtrail
detection:
    selection:
        eventSource: cloudtrail.amazonaws.com
        eventName: DeleteTrail
        userIdentity.type: IAMUser
    condition: selection
"""
FAILED = re.compile(
    r"(\S+) - Failed to load resource: the server responded with a status of (\d+) \(.*\)"
)


@dataclass(frozen=True)
class Tenant:
    id: str
    account: str


@pytest.fixture(scope="module")
def tenant() -> Tenant:
    """A tenant of one account, whose real StopLogging (Stratus Red Team's detonation) kopter's
    ingest wrote and judged: one finding, by kopter's rule and SigmaHQ's."""
    added = accounts.add_tenant(f"web-rules-{secrets.token_hex(3)}")
    account = new_account_id()
    role = f"arn:aws:iam::{account}:role/kopter"
    accounts.add_account(added, accounts.AccountRequest(account, role, ("us-east-1",)))
    stop = json.loads((STRATUS_DIR / "aws.defense-evasion.cloudtrail-stop.json").read_text())
    document = json.dumps({"Records": of_account(stop, account)}).encode()
    result = ingest.ingest_document(
        document, added.tenant_id, (account,), "s3://web/stop.json", get_settings(), lambda _: None
    )
    assert result.findings == 1, result
    return Tenant(added.tenant_id, account)


@pytest.fixture(scope="module")
def server() -> Iterator[WebApi]:
    # The test's webhook is on loopback; an email channel needs kopter's sender.
    env = {
        "KOPTER_CHANNELS_ALLOW_PRIVATE": "true",
        "KOPTER_CHANNELS_EMAIL_FROM": "alerts@kopter.example.com",
    }
    with web_api(OUTPUT / "logs", env) as api:
        yield api


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    assert PATHS
    with chromium(PATHS) as b:
        yield b


@pytest.fixture(scope="module")
def axe_source() -> str:
    return axe_script(OUTPUT)


def api_post(server: WebApi, tenant_id: str, path: str, body: dict[str, Any]) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token(tenant_id)}"}
    return httpx.post(server.base + path, json=body, headers=headers, timeout=30)


def failed_calls(browser: Any) -> list[tuple[str, str]]:
    """The calls Chromium logged as answered with an error (path, status); any other error,
    whole."""
    return [
        (urlsplit(m[1]).path, m[2]) if (m := FAILED.fullmatch(e["message"])) else e["message"]
        for e in errors_in_console(browser)
    ]


def said(browser: Any, section: str, role: str) -> str:
    """What a section's status or alert says now."""
    [text] = texts(browser, f"section[aria-labelledby={section}] [role={role}]")
    return text


def press(browser: Any, css: str, key: str) -> None:
    """A key pressed on a control, as a keyboard user would (the control focused first)."""
    browser.find_element("css selector", css).send_keys(key)


def test_rules_are_listed_added_switched_off_and_a_bad_one_refused(
    browser, server, tenant, axe_source
):
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    SHOTS.mkdir(parents=True, exist_ok=True)
    signed_in(browser, server, tenant.id)
    show(browser, server, "rules")

    # The finding: the StopLogging, named by kopter's rule and SigmaHQ's, each with its author.
    [finding] = api_get(server, tenant.id, "/v1/findings")["items"]
    assert finding["event_name"] == "StopLogging"
    assert sorted(r["source"] for r in finding["rules"]) == ["kopter", "sigma"]
    [row] = texts(browser, "section[aria-labelledby=findings-title] tbody tr")
    cells = row.split("\t")
    assert cells[1:4] == [
        finding["level"],
        f"{finding['event_name']}\n{finding['event_source']}",
        f"{tenant.account}\n{finding['region']}",
    ]
    assert texts(browser, "ul.found-by li") == [
        f"{r['title']} {SOURCES[r['source']]}, by {r['author']}" for r in finding["rules"]
    ]

    def listed() -> list[list[str]]:
        return [[c.strip() for c in r.split("\t")] for r in texts(browser, "div.rules tbody tr")]

    def as_api_lists(rules: list[dict[str, Any]]) -> list[list[str]]:
        return [
            [
                r["title"],
                SOURCES[r["source"]],
                r["author"],
                r["level"],
                "On" if r["enabled"] else "Off",
            ]
            for r in rules
        ]

    rules = api_get(server, tenant.id, "/v1/rules")["items"]
    assert len(rules) == 93 and listed() == as_api_lists(rules)  # kopter's 36, SigmaHQ's 57
    browser.save_screenshot(str(SHOTS / "web-rules.png"))
    check_accessible(browser, axe_source, "rules")
    reached_by_tab(browser)

    # A rule of the tenant's own, pasted and added from the keyboard: listed as the API lists it.
    rule_id = str(uuid.uuid4())
    browser.find_element("id", "f-yaml").send_keys(RULE.format(id=rule_id, level="high"))
    press(browser, "form.add button[type=submit]", Keys.ENTER)
    wait_for(
        lambda: texts(browser, "section[aria-labelledby=add-rule-title] [role=status]") != [""],
        READY,
        "the rule added",
    )
    assert said(browser, "add-rule-title", "status") == (
        f"Added Trail deleted by a user ({rule_id}, level high): on."
    )
    assert said(browser, "add-rule-title", "alert") == ""
    assert browser.find_element("id", "f-yaml").get_attribute("value") == ""
    rules = api_get(server, tenant.id, "/v1/rules")["items"]
    assert [r["id"] for r in rules if r["source"] == "tenant"] == [rule_id]
    assert listed() == as_api_lists(rules)
    assert listed()[-1] == ["Trail deleted by a user", "Yours", "Acme SOC", "high", "On"]

    # Switched off by Space on its switch: the API says off, and so does the page after a reload.
    switch = "button[role=switch][aria-label='Run Trail deleted by a user']"
    press(browser, switch, Keys.SPACE)
    wait_for(
        lambda: (
            browser.find_element("css selector", switch).get_attribute("aria-checked") == "false"
        ),
        READY,
        "the switch off",
    )
    assert said(browser, "rules-title", "status") == "Trail deleted by a user: off."
    [mine] = [r for r in api_get(server, tenant.id, "/v1/rules")["items"] if r["id"] == rule_id]
    assert mine["enabled"] is False
    browser.refresh()
    wait_ready(browser, "rules")
    assert listed()[-1] == ["Trail deleted by a user", "Yours", "Acme SOC", "high", "Off"]

    # A rule kopter would not run: the API's refusal, word for word, and nothing stored.
    bad = RULE.format(id=str(uuid.uuid4()), level="dire")
    browser.find_element("id", "f-yaml").send_keys(bad)
    press(browser, "form.add button[type=submit]", Keys.ENTER)
    wait_for(
        lambda: texts(browser, "section[aria-labelledby=add-rule-title] [role=alert]") != [""],
        READY,
        "the refusal",
    )
    refused = api_post(server, tenant.id, "/v1/rules", {"yaml": bad})
    assert refused.status_code == 400
    assert said(browser, "add-rule-title", "alert") == refused.json()["message"]
    assert "level" in refused.json()["message"]
    assert said(browser, "add-rule-title", "status") == ""
    assert browser.find_element("id", "f-yaml").get_attribute("value") == bad  # to be mended
    assert len(api_get(server, tenant.id, "/v1/rules")["items"]) == 94
    browser.save_screenshot(str(SHOTS / "web-rules-refused.png"))

    # Only the tenant's own, through the filter: the URL keeps it.
    Select(browser.find_element("id", "f-source")).select_by_value("tenant")
    stale(browser)
    press(browser, "form.filters button[type=submit]", Keys.ENTER)
    wait_for(lambda: "source=tenant" in browser.current_url, 10, "the filter in the URL")
    wait_ready(browser, "rules")
    assert listed() == [["Trail deleted by a user", "Yours", "Acme SOC", "high", "Off"]]

    assert failed_calls(browser) == [("/v1/rules", "400")]  # the refusal, and nothing else

    # The session expired while the page was open: the switch goes to sign-in, and says why.
    expired = token(tenant.id, seconds=-1)
    browser.execute_script("sessionStorage.setItem('kopter.token', arguments[0])", expired)
    press(browser, switch, Keys.SPACE)
    wait_ready(browser, "sign-in")
    assert "expired" in browser.find_element("id", "sign-in-reason").text
    assert errors_in_console(browser) == []


def test_channels_are_added_listed_and_removed_and_a_refusal_shown(
    browser, server, tenant, axe_source
):
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    SHOTS.mkdir(parents=True, exist_ok=True)
    signed_in(browser, server, tenant.id)
    show(browser, server, "channels")
    assert texts(browser, "div.channels p.empty") == [
        "No channel: notifications are shown in this app only."
    ]

    def listed() -> list[list[str]]:
        """Each row but its time added (the browser's zone) and its Remove button."""
        rows = [r.split("\t") for r in texts(browser, "div.channels tbody tr")]
        return [r[:3] + r[4:6] for r in rows]

    def add(kind: str, target: str, level: str, secret: str = "") -> None:
        Select(browser.find_element("id", "f-kind")).select_by_value(kind)
        browser.find_element("id", "f-target").send_keys(target)
        if secret:
            browser.find_element("id", "f-secret").send_keys(secret)
        Select(browser.find_element("id", "f-min_level")).select_by_value(level)
        press(browser, "form.add button[type=submit]", Keys.ENTER)
        wait_for(
            lambda: (
                texts(
                    browser,
                    "section[aria-labelledby=add-channel-title] [role=status], "
                    "section[aria-labelledby=add-channel-title] [role=alert]",
                )
                != ["", ""]
            ),
            READY,
            f"the {kind} channel's answer",
        )

    # A webhook, its secret made by kopter: shown once, as the API answered; the URL's query (a
    # key, for some receivers) never.
    hook = "http://127.0.0.1:9/hooks/kopter?token=abc123"
    add("webhook", hook, "high")
    [webhook] = api_get(server, tenant.id, "/v1/channels")["items"]
    assert webhook["target"] == "http://127.0.0.1:9/hooks/kopter?…"
    secret = browser.find_element("css selector", "code.secret").text
    assert said(browser, "add-channel-title", "status") == (
        f"Added Webhook {webhook['target']}, high and above. Its signing secret, shown this once "
        f"(each delivery's X-Kopter-Signature is the HMAC-SHA256 of its body under it): {secret}"
    )
    assert len(secret) >= 16 and secret not in json.dumps(webhook)
    assert listed() == [["Webhook", webhook["target"], "high and above", "—", "—"]]
    assert browser.find_element("id", "f-target").get_attribute("value") == ""

    # An email address: no secret to give (the field is gone), none shown.
    Select(browser.find_element("id", "f-kind")).select_by_value("email")
    assert not browser.find_element("id", "f-secret").is_displayed()
    assert texts(browser, "label[for=f-target]") == ["Email address"]
    add("email", "secops@example.com", "warning")
    assert said(browser, "add-channel-title", "status") == (
        "Added Email secops@example.com, warning and above."
    )
    channels = api_get(server, tenant.id, "/v1/channels")["items"]
    assert [c["target"] for c in channels] == [webhook["target"], "secops@example.com"]
    assert listed() == [
        ["Webhook", webhook["target"], "high and above", "—", "—"],
        ["Email", "secops@example.com", "warning and above", "—", "—"],
    ]

    # A secret kopter would not sign with: the API's refusal, word for word, and nothing stored.
    add("webhook", hook, "info", secret="short")
    refused = api_post(
        server, tenant.id, "/v1/channels", {"kind": "webhook", "target": hook, "secret": "short"}
    )
    assert refused.status_code == 400
    assert said(browser, "add-channel-title", "alert") == refused.json()["message"]
    assert said(browser, "add-channel-title", "status") == ""
    assert api_get(server, tenant.id, "/v1/channels")["items"] == channels
    browser.save_screenshot(str(SHOTS / "web-channels.png"))
    check_accessible(browser, axe_source, "channels")
    reached_by_tab(browser)

    # The secret is nowhere once the page is drawn again.
    browser.refresh()
    wait_ready(browser, "channels")
    assert secret not in browser.page_source and "abc123" not in browser.page_source

    # The webhook removed, from the keyboard, once confirmed: gone from the page and the API.
    press(browser, f"button[aria-label='Remove Webhook {webhook['target']}']", Keys.ENTER)
    confirm = browser.switch_to.alert
    assert confirm.text.startswith(f"Remove Webhook {webhook['target']}?")
    confirm.accept()
    wait_for(lambda: len(listed()) == 1, READY, "the webhook removed")
    assert said(browser, "channels-title", "status") == f"Removed Webhook {webhook['target']}."
    assert [c["id"] for c in api_get(server, tenant.id, "/v1/channels")["items"]] == [
        channels[1]["id"]
    ]
    assert browser.switch_to.active_element.text == "Your channels"  # the keyboard stays there

    assert failed_calls(browser) == [("/v1/channels", "400")]  # the refusal, and nothing else
