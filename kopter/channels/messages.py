"""A notification as each kind of channel receives it.

A webhook gets the notification itself, as the SNS topic does (its id and every field of the
notice, a finding's ``detail`` included), plus the ``timestamp`` of the attempt, so the signature
covers when it was sent and a receiver can refuse a replay. Slack and email get it written for
people: title, body, what it is about, and for a finding each rule that matched with its author
(the Sigma rules' licence, DRL 1.1, asks that the author be shown).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from kopter import times
from kopter.notifications import Notice

SLACK_TEXT_LIMIT = 3000  # a section block's text
EMAIL_SUBJECT_LIMIT = 200
_EMOJI = {"info": ":information_source:", "warning": ":warning:", "high": ":rotating_light:"}


def webhook_body(message: Mapping[str, Any], now: datetime) -> bytes:
    """The bytes a webhook is sent and its signature covers: compact JSON, keys sorted."""
    notice = Notice.from_message(dict(message))
    payload = {"id": notice.notification_id, **message, "timestamp": times.stamp(now)}
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


def slack_body(message: Mapping[str, Any]) -> bytes:
    """An incoming webhook's JSON: ``text`` (the notification's line, also what Slack shows in
    its alerts) and blocks with the rest."""
    severity = str(message.get("severity", "info"))
    emoji = _EMOJI.get(severity, ":red_circle:")
    line = f"{emoji} [{severity}] {message.get('title', '')}"
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": _cut(line, SLACK_TEXT_LIMIT)}}
    ]
    for text in (str(message.get("body", "")), "\n".join(_about(message))):
        if text.strip():  # Slack refuses a block without text
            blocks.append(
                {
                    "type": "section",
                    "text": {"type": "plain_text", "text": _cut(text, SLACK_TEXT_LIMIT)},
                }
            )
    blocks.append(
        {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": f"kopter · {message.get('occurred_at', '')}"}],
        }
    )
    return json.dumps({"text": _cut(line, SLACK_TEXT_LIMIT), "blocks": blocks}).encode()


def email(message: Mapping[str, Any]) -> tuple[str, str]:
    """The subject and plain-text body of the email."""
    severity = str(message.get("severity", "info"))
    subject = _cut(f"[kopter] {severity}: {message.get('title', '')}", EMAIL_SUBJECT_LIMIT)
    lines = [
        str(message.get("title", "")),
        "",
        str(message.get("body", "")),
        "",
        f"Severity: {severity}",
        f"When: {message.get('occurred_at', '')}",
        *_about(message),
        "",
        "Sent by kopter to an email channel of your tenant (`kopter channels list`).",
    ]
    return subject, "\n".join(lines)


def _about(message: Mapping[str, Any]) -> list[str]:
    """What the notification is about, a line each: its links, and a finding's rules."""
    lines = []
    links = message.get("links")
    if isinstance(links, Mapping):
        lines += [f"{name}: {value}" for name, value in links.items()]
    detail = message.get("detail")
    rules = detail.get("rules") if isinstance(detail, Mapping) else None
    for rule in rules if isinstance(rules, list) else []:
        if isinstance(rule, Mapping):
            lines.append(
                f"Rule: {rule.get('title', rule.get('id', '?'))} ({rule.get('source', '?')}, "
                f"level {rule.get('level', '?')}, by {rule.get('author') or 'unknown'})"
            )
    return lines


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
