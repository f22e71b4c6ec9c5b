"""Frontend notifications: what a customer should see, stored once however often it is raised.

A notice is identified by its tenant, kind, subject and the time of what it reports, so the same
notice raised twice (a redelivered message, two sources seeing one change) is one item. Storing
is exactly once (a conditional put). Publishing to SNS, when a topic is configured, is claimed on
the item first (a conditional update), so deliveries racing publish once; a failed publish
releases the claim and raises, and the redelivered message publishes it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from kopter import aws, dynamo
from kopter.errors import Refused
from kopter.settings import Settings
from kopter.tables import FrontendNotification

SEVERITIES = ("info", "warning", "high", "critical")  # in rising order
# Sigma's levels, as the notice severities they raise.
SIGMA_LEVELS = {
    "informational": "info",
    "low": "info",
    "medium": "warning",
    "high": "high",
    "critical": "critical",
}
TTL_DAYS = 90
STORED, DUPLICATE = "stored", "duplicate"


@dataclass(frozen=True)
class Notice:
    tenant_id: str
    kind: str  # e.g. "account-unhealthy"
    subject: str  # what it is about, e.g. "account:123456789012"
    occurred_at: str  # ISO UTC time of what it reports, not of when it was raised
    severity: str
    title: str
    body: str
    links: dict[str, str] = field(default_factory=dict)
    # What the kind carries besides, for whoever reads the notice whole (a webhook, the API):
    # a finding's rules and call.
    detail: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise Refused(f"severity {self.severity!r} is not one of {', '.join(SEVERITIES)}")

    @property
    def notification_id(self) -> str:
        identity = "\0".join((self.tenant_id, self.kind, self.subject, self.occurred_at))
        return hashlib.sha256(identity.encode()).hexdigest()[:24]

    @property
    def key(self) -> str:
        return FrontendNotification.sort_key(self.occurred_at, self.notification_id)

    def as_message(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_message(cls, message: dict[str, Any]) -> Notice:
        return cls(**message)


def severity_named(name: str) -> str:
    """The notice severity ``name`` means: a severity, or one of Sigma's levels."""
    severity = SIGMA_LEVELS.get(name.lower(), name.lower())
    if severity not in SEVERITIES:
        names = ", ".join([*SEVERITIES, *(s for s in SIGMA_LEVELS if s not in SEVERITIES)])
        raise Refused(f"level {name!r} is not one of {names}")
    return severity


def at_least(severity: str, minimum: str) -> bool:
    return SEVERITIES.index(severity) >= SEVERITIES.index(minimum)


def deliver(notice: Notice, settings: Settings) -> str:
    """Store the notice (once) and publish it to the topic, if one is configured."""
    status = STORED if _store(notice) else DUPLICATE
    if settings.notifications_topic_arn and _claim_publication(notice):
        try:
            _publish(notice, settings)
        except Exception:
            _release_publication(notice)  # the redelivered message publishes it
            raise
    return status


def _claim_publication(notice: Notice) -> bool:
    """Win the right to publish: of deliveries racing, one flips ``published``."""
    return dynamo.update_if(
        FrontendNotification(notice.tenant_id, notice.key),
        [FrontendNotification.published.set(True)],
        FrontendNotification.published == False,  # noqa: E712
    )


def _release_publication(notice: Notice) -> None:
    FrontendNotification(notice.tenant_id, notice.key).update(
        actions=[FrontendNotification.published.set(False)]
    )


def _store(notice: Notice) -> bool:
    now = datetime.now(UTC)
    item = FrontendNotification(
        notice.tenant_id,
        notice.key,
        kind=notice.kind,
        subject=notice.subject,
        severity=notice.severity,
        title=notice.title,
        body=notice.body,
        links=notice.links,
        detail=notice.detail,
        created_at=now,
        expires_at=now + timedelta(days=TTL_DAYS),
    )
    return dynamo.put_if_absent(item)


def _publish(notice: Notice, settings: Settings) -> None:
    aws.client("sns", settings).publish(
        TopicArn=settings.notifications_topic_arn,
        Subject=notice.title[:100],
        Message=json.dumps({"id": notice.notification_id, **notice.as_message()}),
        MessageAttributes={
            "tenant_id": {"DataType": "String", "StringValue": notice.tenant_id},
            "severity": {"DataType": "String", "StringValue": notice.severity},
            "kind": {"DataType": "String", "StringValue": notice.kind},
        },
    )
