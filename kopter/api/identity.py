"""Who is calling: the tenant of a request comes from its identity, and from nothing else.

Two modes, chosen by ``KOPTER_API_AUTH``; unset, the API refuses to start:

- ``gateway``: behind API Gateway, whose integration maps the caller's Cognito identity id into
  the ``identityId`` header. Only the gateway may set it, so the integration also adds a shared
  secret (``KOPTER_API_GATEWAY_SECRET``) as ``x-kopter-gateway-secret``: a request that reached
  kopter some other way has no identity.
- ``jwt``: a bearer token signed with ``KOPTER_API_JWT_KEY`` (HS256 secret or RS256 public key)
  or with one of the RS256 keys at ``KOPTER_API_JWT_JWKS_URL`` (a Cognito user pool's, see
  ``jwks.py``), with an expiry, whose ``sub`` is the identity; audience and issuer are checked
  when set, and must be set with a JWKS URL: every client of the pool has its tokens signed with
  those keys, the audience is what makes them kopter's.

The identity must be a tenant's id (``kopter tenants add --tenant-id``); anything else is a 401.
"""

from __future__ import annotations

import hmac
import re
import time
from collections.abc import Callable
from typing import Annotated, Any

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from fastapi import Depends, Request
from jwt.algorithms import HMACAlgorithm
from jwt.exceptions import InvalidKeyError
from pynamodb.exceptions import DoesNotExist
from starlette.datastructures import Headers

from kopter.api import jwks
from kopter.api.errors import ApiError
from kopter.errors import ConfigError
from kopter.settings import Settings
from kopter.tables import Tenant

IDENTITY_HEADER = "identityId"
SECRET_HEADER = "x-kopter-gateway-secret"
MIN_SECRET = 32  # bytes: HMAC keys shorter than the hash add no strength, and are guessable
# The form `kopter tenants add --tenant-id` accepts: no "#", which separates key parts.
IDENTITY = re.compile(r"[\w:.@-]{1,128}")
LEEWAY_SECONDS = 30  # clock skew between the token's issuer and kopter
UNAVAILABLE = "the identity provider's keys cannot be fetched: try again later"

Identify = Callable[[Headers], str]
KeyFor = Callable[[str], Any]  # the key a token is checked with


def unauthorized(message: str, mode: str) -> ApiError:
    headers = {"WWW-Authenticate": 'Bearer realm="kopter"'} if mode == "jwt" else None
    return ApiError(401, message, headers)


def gateway(secret: str) -> Identify:
    expected = secret.encode()

    def identify(headers: Headers) -> str:
        given = headers.get(SECRET_HEADER, "").encode()
        if not hmac.compare_digest(given, expected):
            raise unauthorized("the request did not come through the API gateway", "gateway")
        identity = headers.get(IDENTITY_HEADER)
        if not identity:
            raise unauthorized(f"no {IDENTITY_HEADER} header", "gateway")
        return identity

    return identify


def bearer(key_for: KeyFor, algorithm: str, audience: str | None, issuer: str | None) -> Identify:
    required = ["exp", "sub", *(["aud"] if audience else []), *(["iss"] if issuer else [])]

    def identify(headers: Headers) -> str:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise unauthorized("a bearer token is needed", "jwt")
        try:
            claims = jwt.decode(
                token,
                key_for(token),
                algorithms=[algorithm],  # one: never "none", never HS256 with a public key
                audience=audience,
                issuer=issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": required},
            )
        except jwks.KeysUnavailable:
            raise ApiError(503, UNAVAILABLE) from None
        except jwt.ExpiredSignatureError:
            raise unauthorized("the token has expired", "jwt") from None
        except jwt.InvalidTokenError:
            raise unauthorized("the token is not valid", "jwt") from None
        return str(claims["sub"])

    return identify


def from_settings(settings: Settings) -> Identify:
    """The configured mode, or a ConfigError naming what is missing."""
    if settings.api_auth == "gateway":
        return gateway(_secret("KOPTER_API_GATEWAY_SECRET", settings.api_gateway_secret))
    if settings.api_auth == "jwt":
        return bearer(
            _key_for(settings),
            settings.api_jwt_algorithm,
            settings.api_jwt_audience,
            settings.api_jwt_issuer,
        )
    raise ConfigError(
        "KOPTER_API_AUTH is not set: set it to gateway (behind API Gateway, which sets the "
        "identityId header) or jwt (bearer tokens signed with KOPTER_API_JWT_KEY or with the "
        "keys at KOPTER_API_JWT_JWKS_URL)"
    )


def _key_for(settings: Settings) -> KeyFor:
    url = settings.api_jwt_jwks_url
    if url is None:
        key = _jwt_key(settings)
        return lambda _: key
    if settings.api_jwt_key:
        raise ConfigError("set KOPTER_API_JWT_KEY or KOPTER_API_JWT_JWKS_URL, not both")
    if settings.api_jwt_algorithm != jwks.ALGORITHM:
        raise ConfigError(
            f"KOPTER_API_JWT_JWKS_URL gives {jwks.ALGORITHM} keys: set KOPTER_API_JWT_ALGORITHM "
            f"to {jwks.ALGORITHM}"
        )
    if not settings.api_jwt_issuer or not settings.api_jwt_audience:
        raise ConfigError(
            "KOPTER_API_JWT_JWKS_URL needs KOPTER_API_JWT_ISSUER and KOPTER_API_JWT_AUDIENCE "
            "(for Cognito, the user pool's URL and the app client's id)"
        )
    cache, cooldown = settings.api_jwt_jwks_cache_seconds, settings.api_jwt_jwks_cooldown_seconds
    if cooldown > cache:
        raise ConfigError(
            f"KOPTER_API_JWT_JWKS_COOLDOWN_SECONDS={cooldown} is more than "
            f"KOPTER_API_JWT_JWKS_CACHE_SECONDS={cache}"
        )
    return jwks.IssuerKeys(url, cache, cooldown)


def _secret(name: str, value: str | None) -> str:
    if not value or len(value.encode()) < MIN_SECRET:
        raise ConfigError(f"{name} must be set to a random secret of at least {MIN_SECRET} bytes")
    return value


def _jwt_key(settings: Settings) -> Any:
    if settings.api_jwt_algorithm == "HS256":
        secret = _secret("KOPTER_API_JWT_KEY", settings.api_jwt_key).encode()
        try:
            HMACAlgorithm(HMACAlgorithm.SHA256).prepare_key(secret)
        except InvalidKeyError:
            raise ConfigError(
                "KOPTER_API_JWT_KEY is a PEM or SSH key: HS256 needs a secret"
            ) from None
        return secret
    if not settings.api_jwt_key:
        raise ConfigError(
            "set KOPTER_API_JWT_KEY to the PEM of the issuer's RSA public key, or "
            "KOPTER_API_JWT_JWKS_URL to the URL of its key set"
        )
    try:
        key = load_pem_public_key(settings.api_jwt_key.encode())
    except ValueError:
        key = None
    if not isinstance(key, RSAPublicKey):
        raise ConfigError("KOPTER_API_JWT_KEY must be the PEM of an RSA public key for RS256")
    return key


class KnownTenants:
    """Whether an identity is a tenant, remembered for a while: one GetItem per identity and
    TTL, not one per request. Only hits are remembered, so a tenant added now works now, and a
    tenant removed is refused once the TTL (``KOPTER_API_TENANT_CACHE_SECONDS``) has passed."""

    def __init__(self, ttl: float = 300, size: int = 10_000) -> None:
        self.ttl, self.size = ttl, size
        self._seen: dict[str, float] = {}

    def __contains__(self, identity: str) -> bool:
        now = time.monotonic()
        if self._seen.get(identity, 0) > now:
            return True
        try:
            tenant = Tenant.get(identity)
        except DoesNotExist:
            return False
        if tenant.removed_at is not None:
            return False
        if len(self._seen) >= self.size:
            self._seen.clear()
        self._seen[identity] = now + self.ttl
        return True


def caller(request: Request) -> str:
    """The FastAPI dependency every tenant's route takes: the caller's tenant id."""
    state = request.app.state
    identity = state.identify(request.headers)
    if not IDENTITY.fullmatch(identity) or identity not in state.tenants:
        raise unauthorized("the identity is not a tenant's", state.mode)
    request.state.tenant_id = identity  # for the access log
    return identity


Caller = Annotated[str, Depends(caller)]
