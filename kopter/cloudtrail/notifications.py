"""The messages AWS sends when CloudTrail delivers a log file, in AWS's own formats.

Understood:
- an S3 event notification: ``{"Records": [{"s3": {"bucket": {"name"}, "object": {"key"}}}]}``,
  the key URL-encoded (``unquote_plus``);
- the same inside an SNS envelope: ``{"Type": "Notification", "Message": "<JSON string>"}``;
- CloudTrail's own SNS message: ``{"s3Bucket": "…", "s3ObjectKey": ["…", …]}``;
- noise, to be deleted without error: S3's ``s3:TestEvent``, CloudTrail's
  ``"CloudTrail validation message."``, SNS's ``SubscriptionConfirmation`` and
  ``UnsubscribeConfirmation``.

Anything else raises ``Unparseable`` with the reason, for the dead-letter queue.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus

CLOUDTRAIL_VALIDATION = "CloudTrail validation message."
SNS_NOISE = ("SubscriptionConfirmation", "UnsubscribeConfirmation")


class Unparseable(ValueError):
    """A message of no shape kopter knows; the text says what was wrong."""


@dataclass(frozen=True)
class Notification:
    objects: list[tuple[str, str]] = field(default_factory=list)  # (bucket, key)
    noise: str | None = None  # why the message carries nothing to ingest


def parse(body: str) -> Notification:
    try:
        document = json.loads(body)
    except (ValueError, TypeError, RecursionError) as e:  # RecursionError: nested too deeply
        raise Unparseable(f"not JSON: {e}") from None
    return _parse(document, wrapped=False)


def _parse(document: Any, wrapped: bool) -> Notification:
    if document == CLOUDTRAIL_VALIDATION:
        return Notification(noise="CloudTrail validation message")
    if not isinstance(document, dict):
        raise Unparseable(f"a JSON {type(document).__name__}, not an object")
    if document.get("Event") == "s3:TestEvent":
        return Notification(noise="S3 test event")
    if not wrapped and "Type" in document:
        return _sns(document)
    if "Records" in document:
        return _s3_event(document["Records"])
    if "s3Bucket" in document:
        return _cloudtrail_sns(document)
    raise Unparseable(f"unknown shape: keys {[key[:40] for key in sorted(document)[:8]]}")


def _sns(envelope: dict[str, Any]) -> Notification:
    kind = envelope["Type"]
    if not isinstance(kind, str):  # its repr could be huge, or recurse as deep as the JSON
        raise Unparseable(f"SNS Type is a JSON {type(kind).__name__}, not a string")
    if kind in SNS_NOISE:
        return Notification(noise=f"SNS {kind}")
    if kind != "Notification":
        raise Unparseable(f"SNS message of type {kind[:80]!r}")
    message = envelope.get("Message")
    if not isinstance(message, str):
        raise Unparseable("SNS notification without a Message string")
    if message == CLOUDTRAIL_VALIDATION:
        return Notification(noise="CloudTrail validation message")
    try:
        inner = json.loads(message)
    except (ValueError, RecursionError):
        raise Unparseable(f"SNS Message is not JSON: {message[:80]!r}") from None
    return _parse(inner, wrapped=True)


def _s3_event(records: Any) -> Notification:
    if not isinstance(records, list):
        raise Unparseable("Records is not a list")
    objects = []
    for record in records:
        try:
            event = record.get("eventName", "ObjectCreated")
            if not (isinstance(event, str) and event.startswith("ObjectCreated")):
                continue
            s3 = record["s3"]
            bucket, key = s3["bucket"]["name"], s3["object"]["key"]
        except (KeyError, TypeError, AttributeError):
            raise Unparseable("an S3 event record without s3.bucket.name/object.key") from None
        if not isinstance(key, str):
            raise Unparseable("an S3 event record whose object.key is not a string")
        objects.append(_s3_object(bucket, unquote_plus(key)))
    if not objects:
        return Notification(noise="S3 event with no object created")
    return Notification(objects=objects)


def _cloudtrail_sns(document: dict[str, Any]) -> Notification:
    bucket, keys = document.get("s3Bucket"), document.get("s3ObjectKey")
    if not isinstance(bucket, str) or not isinstance(keys, list):
        raise Unparseable("CloudTrail message without s3Bucket and a s3ObjectKey list")
    if not all(isinstance(k, str) for k in keys):
        raise Unparseable("CloudTrail message with a non-string s3ObjectKey")
    return Notification(objects=[_s3_object(bucket, key) for key in keys])


def _s3_object(bucket: Any, key: str) -> tuple[str, str]:
    """(bucket, key), both strings that UTF-8 can encode. JSON can escape a lone surrogate
    ("\\ud800"), which no S3 name holds and which the ingest task's message could not carry."""
    if not isinstance(bucket, str):
        raise Unparseable(f"an S3 bucket name that is a JSON {type(bucket).__name__}")
    try:
        bucket.encode()
        key.encode()
    except UnicodeEncodeError:
        raise Unparseable("an S3 bucket or key that is not valid Unicode") from None
    return bucket, key
