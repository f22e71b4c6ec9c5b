"""Pagination: pages read from DynamoDB, and the opaque ``next`` tokens that continue them.

A cursor carries DynamoDB's LastEvaluatedKey, the tenant it was issued to and a fingerprint of
the query (operation and filters), signed with HMAC-SHA256 under ``KOPTER_API_CURSOR_KEY`` so
several API processes, and restarts, share it. Decoding checks the signature, that the tenant and
the fingerprint are the caller's and the current query's (a cursor replayed with other filters is
refused), and that every hash key in the key is the one the current query reads: a cursor moves a
query forward within the caller's own partition, never into another. Anything else is a 400.

The contents are the caller's own keys, so they are signed, not encrypted; callers must treat the
token as opaque all the same.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from pynamodb.pagination import ResultIterator

from kopter.api.errors import ApiError
from kopter.api.identity import MIN_SECRET
from kopter.errors import ConfigError
from kopter.reads.pages import Key

T = TypeVar("T")
MAX_PAGES = 4  # DynamoDB pages one request reads at most, however selective its filters


@dataclass(frozen=True)
class Scope:
    """What a page reads: the query's fingerprint, and the key attributes of its index."""

    tenant_id: str
    query: str  # the operation, e.g. "audit"
    filters: Mapping[str, Any]
    hash_keys: Mapping[str, str]  # attribute: the value every key of this query must have
    range_keys: frozenset[str]

    @property
    def fingerprint(self) -> str:
        canonical = json.dumps([self.query, dict(self.filters)], sort_keys=True, default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()[:32]

    @property
    def key_names(self) -> set[str]:
        return {*self.hash_keys, *self.range_keys}


def bad_cursor() -> ApiError:
    return ApiError(400, "cursor: not a cursor of this query; start again without it")


class Cursors:
    def __init__(self, secret: str | None) -> None:
        if not secret or len(secret.encode()) < MIN_SECRET:
            raise ConfigError(
                f"KOPTER_API_CURSOR_KEY must be set to a random secret of at least {MIN_SECRET} "
                "bytes, the same in every API process"
            )
        self._secret = secret.encode()

    def _sign(self, payload: bytes) -> bytes:
        return hmac.new(self._secret, payload, hashlib.sha256).digest()

    def encode(self, scope: Scope, key: Key) -> str:
        payload = json.dumps(
            {"t": scope.tenant_id, "q": scope.fingerprint, "k": key}, separators=(",", ":")
        ).encode()
        return f"{_b64(payload)}.{_b64(self._sign(payload))}"

    def decode(self, scope: Scope, token: str) -> Key:
        try:
            body, signature = token.split(".")
            payload = _unb64(body)
            if not hmac.compare_digest(_unb64(signature), self._sign(payload)):
                raise bad_cursor()
            data = json.loads(payload)
        except (ValueError, binascii.Error):  # also a UnicodeError or JSONDecodeError
            raise bad_cursor() from None
        if not isinstance(data, dict) or (data.get("t"), data.get("q")) != (
            scope.tenant_id,
            scope.fingerprint,
        ):
            raise bad_cursor()
        key = data.get("k")
        if not isinstance(key, dict) or set(key) != scope.key_names:
            raise bad_cursor()
        for name, value in key.items():
            text = value.get("S") if isinstance(value, dict) and len(value) == 1 else None
            if not isinstance(text, str) or not text:
                raise bad_cursor()
            if name in scope.hash_keys and text != scope.hash_keys[name]:
                raise bad_cursor()  # another partition: never
        return key


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def read_page(
    results: ResultIterator[Any], scope: Scope, limit: int, item: Callable[[Key], T]
) -> tuple[list[T], Key | None]:
    """Up to ``limit`` items of a query, and the key to continue from (None at the end).

    Reads at most MAX_PAGES DynamoDB pages, so a filter that matches little costs a bounded
    read: the caller gets fewer items, or none, with a cursor to go on."""
    pages = results.page_iter
    found: list[T] = []
    for read, page in enumerate(pages, 1):
        raws = page.get("Items", [])
        for i, raw in enumerate(raws):
            found.append(item(raw))
            if len(found) == limit:
                more = i + 1 < len(raws) or pages.last_evaluated_key is not None
                return found, {name: raw[name] for name in scope.key_names} if more else None
        if read >= MAX_PAGES:
            break
    return found, pages.last_evaluated_key


def cursors(request: Request) -> Cursors:
    return request.app.state.cursors


Pager = Annotated[Cursors, Depends(cursors)]
