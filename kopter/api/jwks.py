"""The issuer's signing keys, from its JWKS URL: how the read API trusts a Cognito user pool (or
any OIDC provider) whose keys rotate, without a restart.

PyJWT's ``PyJWKClient`` does the fetching (with a timeout, no redirects), the cache (the key set
is used for ``KOPTER_API_JWT_JWKS_CACHE_SECONDS``, then fetched again), and the refetch when a
token names a ``kid`` the cached set lacks (at most once per
``KOPTER_API_JWT_JWKS_COOLDOWN_SECONDS``, so a flood of made-up kids cannot hammer the issuer).
Two things it leaves out are added here, in its ``fetch_data``:

- a failed fetch is also not retried within the cooldown: an unreachable issuer would otherwise
  be asked again by every request, each waiting the timeout while holding the client's lock;
- a failed fetch keeps the last key set that was fetched, so an issuer's outage does not refuse
  every signed-in user once the cache expires. Before any fetch succeeded there is nothing to
  keep: ``KeysUnavailable``, which the API answers with a 503.

Every fetch (successful or not) is thus at least the cooldown after the one before (the cooldown
being no longer than the cache, which ``identity`` checks).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from jwt import PyJWKClient
from jwt.exceptions import PyJWKClientError, PyJWKSetError

log = logging.getLogger(__name__)

# Seconds to connect and for each read. Cognito answers in milliseconds; other requests wait on
# the client's lock meanwhile, so a slow issuer is better given up on early.
FETCH_TIMEOUT = 5
ALGORITHM = "RS256"  # Cognito's; the only one taken from a JWKS, whatever a token's header says


class KeysUnavailable(Exception):
    """No key set has been fetched yet, and the issuer cannot be reached now."""


class _Client(PyJWKClient):
    def __init__(self, url: str, cache_seconds: int, cooldown_seconds: int) -> None:
        super().__init__(
            url,
            cache_jwk_set=True,
            lifespan=cache_seconds,
            cooldown_duration=cooldown_seconds,
            timeout=FETCH_TIMEOUT,
        )
        self._last_good: dict[str, Any] | None = None
        self._failed_at = float("-inf")

    def fetch_data(self) -> Any:
        """The key set from the issuer, or the last one fetched when the issuer failed now or
        within the cooldown. Called under the client's lock."""
        if time.monotonic() - self._failed_at < self.cooldown_duration:
            return self._kept("the last fetch failed less than the cooldown ago")
        try:
            data = super().fetch_data()
        # PyJWKClient wraps what fails in opening the URL; not a body that is not JSON
        # (ValueError) or a connection lost while reading it (OSError).
        except (PyJWKClientError, PyJWKSetError, ValueError, OSError) as e:
            self._failed_at = time.monotonic()
            log.warning("JWKS fetch failed", extra={"fields": {"url": self.uri, "error": str(e)}})
            return self._kept(str(e))
        self._last_good = data
        kids = [k.get("kid") for k in data.get("keys", []) if isinstance(k, dict)]
        log.info("JWKS fetched", extra={"fields": {"url": self.uri, "kids": kids}})
        return data

    def _kept(self, why: str) -> dict[str, Any]:
        if self._last_good is None:
            raise KeysUnavailable(why)
        return self._last_good


class IssuerKeys:
    """The public key a token names by its ``kid``, from the issuer's JWKS URL."""

    def __init__(self, url: str, cache_seconds: int, cooldown_seconds: int) -> None:
        self._client = _Client(url, cache_seconds, cooldown_seconds)

    def __call__(self, token: str) -> RSAPublicKey:
        """The key to check ``token`` with; jwt.InvalidTokenError when the token is not one of
        the issuer's (the header is read before any signature is checked, so nothing in it is
        trusted but to pick a key: the algorithm is RS256 whatever the header says)."""
        header = jwt.get_unverified_header(token)
        kid = header.get("kid")
        # A token that names no key, or another algorithm, costs no fetch.
        if header.get("alg") != ALGORITHM or not isinstance(kid, str) or not kid:
            raise jwt.InvalidTokenError("not an RS256 token naming its key")
        try:
            key = self._client.get_signing_key(kid).key
        except PyJWKClientError:
            raise jwt.InvalidTokenError("no such key in the issuer's key set") from None
        if not isinstance(key, RSAPublicKey):
            raise jwt.InvalidTokenError("the key the token names is not an RSA key")
        return key
