"""Tokens PyJWT refuses to make (``alg: none``, HS256 keyed with a public key's PEM), for the
identity tests to show that the API refuses them too."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any


def handmade(header: dict[str, Any], claims: dict[str, Any], sign: Callable[[bytes], bytes]) -> str:
    """A compact JWT of ``header`` and ``claims``: ``sign(signing input) -> signature bytes``."""
    parts = [json.dumps(header).encode(), json.dumps(claims).encode()]
    signing_input = ".".join(b64url(part) for part in parts)
    return f"{signing_input}.{b64url(sign(signing_input.encode()))}"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
