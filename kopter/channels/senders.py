"""One attempt at delivering to a channel: a POST to a webhook or to Slack, or an email by SES.

An attempt either delivers or raises ``Failed`` with the reason; ``final`` when trying again
cannot help (the URL now resolves to an address kopter must not call), so the delivery is parked
at once instead of retried. A POST connects to the address the guard checked, with the URL's
host in the Host header and, for https, in SNI and the certificate check; it waits at most
``KOPTER_CHANNELS_TIMEOUT`` seconds to connect and as long for each read, follows no redirect,
and reads no more than the start of the answer (for the reason of a refusal).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from urllib3 import HTTPConnectionPool, HTTPSConnectionPool, Timeout
from urllib3.exceptions import ConnectTimeoutError, HTTPError, NewConnectionError

from kopter import aws
from kopter.channels import guard, messages, signing
from kopter.errors import KopterError, Refused, aws_error
from kopter.notifications import Notice
from kopter.settings import Settings
from kopter.tables import Channel

USER_AGENT = "kopter-notifications/1"
ANSWER_SHOWN = 300  # bytes of a refusing answer kept in the reason
MAX_ADDRESSES = 2  # tried in turn when one does not connect (an IPv6 route that is missing)


class Failed(KopterError):
    def __init__(self, reason: str, final: bool = False) -> None:
        super().__init__(reason)
        self.final = final


def send(channel: Channel, message: Mapping[str, Any], settings: Settings) -> None:
    """One attempt at delivering ``message`` (a notification as raised) to ``channel``."""
    try:
        if channel.kind == "webhook":
            body = messages.webhook_body(message, datetime.now(UTC))
            notification_id = Notice.from_message(dict(message)).notification_id
            headers = {
                "X-Kopter-Signature": signing.signature(channel.secret or "", body),
                "X-Kopter-Delivery": signing.delivery_id(notification_id, channel.channel_id),
            }
            post(guard.endpoint(channel.target), body, headers, settings)
        elif channel.kind == "slack":
            found = guard.slack_endpoint(channel.target, settings.channels_allow_private)
            post(found, messages.slack_body(message), {}, settings)
        elif channel.kind == "email":
            subject, text = messages.email(message)
            send_email(channel.target, subject, text, settings)
        else:
            raise Failed(f"a channel of kind {channel.kind!r}, which this worker does not know")
    except Refused as e:  # the URL, as this worker's settings judge it
        raise Failed(str(e), final=True) from None


def post(
    found: guard.Endpoint, body: bytes, headers: Mapping[str, str], settings: Settings
) -> None:
    """POST ``body`` to ``found``, the endpoint of a URL the guard parsed."""
    try:
        addresses = guard.addresses(found, settings.channels_allow_private)
    except Refused as e:
        raise Failed(str(e), final=True) from None
    except guard.Unresolvable as e:
        raise Failed(str(e)) from None
    reason = ""
    for address in addresses[:MAX_ADDRESSES]:
        try:
            status, answer = _post(found, address, body, headers, settings.channels_timeout)
        except (NewConnectionError, ConnectTimeoutError) as e:
            reason = f"cannot connect to {found.host} ({address}): {_why(e)}"
            continue
        except HTTPError as e:
            raise Failed(f"{found.host} ({address}): {_why(e)}") from None
        if 200 <= status < 300:
            return
        shown = answer.decode(errors="replace").strip()
        moved = " (a redirect, which kopter does not follow)" if 300 <= status < 400 else ""
        raise Failed(f"{found.host} answered {status}{moved}" + (f": {shown}" if shown else ""))
    raise Failed(reason)


def _post(
    found: guard.Endpoint, address: str, body: bytes, headers: Mapping[str, str], timeout: int
) -> tuple[int, bytes]:
    limit = Timeout(connect=timeout, read=timeout)
    if found.scheme == "https":
        pool: HTTPConnectionPool = HTTPSConnectionPool(
            address,
            found.port,
            timeout=limit,
            retries=False,
            maxsize=1,
            server_hostname=found.host,
            assert_hostname=found.host,
            cert_reqs="CERT_REQUIRED",
        )
    else:
        pool = HTTPConnectionPool(address, found.port, timeout=limit, retries=False, maxsize=1)
    with pool:
        response = pool.urlopen(
            "POST",
            found.target,
            body=body,
            headers={
                **headers,
                "Host": found.host_header,
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
            },
            redirect=False,
            retries=False,
            assert_same_host=False,
            preload_content=False,
        )
        try:
            answer = response.read(ANSWER_SHOWN, decode_content=False)
        finally:
            response.release_conn()
    return response.status, answer


def _why(error: Exception) -> str:
    """An urllib3 error as its last cause says it, without the pool's own wording."""
    reason = getattr(error, "reason", None) or error
    return str(reason).split(": ", 1)[-1] if isinstance(reason, Exception) else str(reason)


def send_email(address: str, subject: str, text: str, settings: Settings) -> None:
    if settings.channels_email_from is None:
        raise Failed("KOPTER_CHANNELS_EMAIL_FROM is not set on this worker", final=True)
    try:
        aws.client("ses", settings).send_email(
            Source=settings.channels_email_from,
            Destination={"ToAddresses": [address]},
            Message={
                "Subject": {"Data": subject, "Charset": "UTF-8"},
                "Body": {"Text": {"Data": text, "Charset": "UTF-8"}},
            },
        )
    except (ClientError, BotoCoreError) as e:
        raise Failed(f"SES: {aws_error(e)}") from None
