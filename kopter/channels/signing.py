"""A webhook's signature and delivery id.

``X-Kopter-Signature: sha256=<hex>`` is HMAC-SHA256 of the exact body bytes under the channel's
secret: the receiver computes the same over the body it got and compares in constant time. The
body carries the attempt's ``timestamp``, so the signature covers it too. ``X-Kopter-Delivery``
is the same for every attempt of one notification to one channel, so a receiver that got it
once can drop the others.
"""

from __future__ import annotations

import hashlib
import hmac


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def delivery_id(notification_id: str, channel_id: str) -> str:
    return hashlib.sha256(f"{notification_id}:{channel_id}".encode()).hexdigest()[:32]
