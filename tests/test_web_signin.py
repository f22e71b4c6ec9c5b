"""Signing in to the web app through an OIDC provider (what Cognito's hosted UI does): the app
sends the user to the provider with a PKCE challenge, takes the code back, exchanges it with the
verifier for an ID token, and the read API accepts that token. The provider here is a small
OIDC server on 127.0.0.1 playing Cognito's part; the browser, the app and `kopter api` are real.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from kopter import accounts
from tests.conftest import OUTPUT, needs
from tests.support.serving import serving
from tests.support.webapp import browser_paths, chromium, wait_ready, web_api

PATHS = browser_paths()
pytestmark = needs("chromium", "chromedriver")
CLIENT_ID = "kopterweb7client"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PUBLIC_PEM = (
    KEY.public_key()
    .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    .decode()
)


class Provider(ThreadingHTTPServer):
    """Discovery, /authorize (the user is taken to have signed in as ``subject``) and /token,
    which checks the PKCE verifier against the challenge before it issues an RS256 ID token."""

    subject = ""
    codes: dict[str, dict[str, str]]  # issued at /authorize, not yet exchanged
    issued: list[str]  # every code /authorize gave
    token_requests: list[dict[str, str]]  # every request /token had, refused ones too

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    server: Provider

    def log_message(self, *_: Any) -> None:
        pass

    def _send(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Access-Control-Allow-Origin", "*")  # as Cognito's endpoints answer
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        issuer = self.server.issuer
        if url.path == "/.well-known/openid-configuration":
            self._send(
                200,
                {
                    "issuer": issuer,
                    "authorization_endpoint": f"{issuer}/authorize",
                    "token_endpoint": f"{issuer}/token",
                },
            )
        elif url.path == "/authorize":
            q = {k: v[0] for k, v in parse_qs(url.query).items()}
            assert q["response_type"] == "code" and q["client_id"] == CLIENT_ID
            assert q["code_challenge_method"] == "S256" and q["scope"] == "openid email"
            code = secrets.token_urlsafe(16)
            self.server.codes[code] = q
            self.server.issued.append(code)
            target = f"{q['redirect_uri']}?{urlencode({'code': code, 'state': q['state']})}"
            self.send_response(302)
            self.send_header("Location", target)
            self.end_headers()
        else:
            self._send(404, {})

    def do_OPTIONS(self) -> None:
        self.send_response(204)
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Access-Control-Allow-Headers", "Content-Type")
        self.end_headers()

    def do_POST(self) -> None:
        form = parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
        fields = {k: v[0] for k, v in form.items()}
        self.server.token_requests.append(fields)
        asked = self.server.codes.pop(fields.get("code", ""), None)
        challenge = base64.urlsafe_b64encode(
            hashlib.sha256(fields.get("code_verifier", "").encode()).digest()
        ).rstrip(b"=")
        if (
            asked is None
            or challenge.decode() != asked["code_challenge"]
            or fields.get("redirect_uri") != asked["redirect_uri"]
            or fields.get("client_id") != CLIENT_ID
        ):
            self._send(400, {"error": "invalid_grant"})
            return
        now = int(time.time())
        claims = {"sub": self.server.subject, "aud": CLIENT_ID, "iss": self.server.issuer}
        token = jwt.encode({**claims, "iat": now, "exp": now + 3600}, KEY, "RS256")
        self._send(200, {"id_token": token, "access_token": "unused", "token_type": "Bearer"})


@pytest.fixture
def provider() -> Iterator[Provider]:
    server = Provider(("127.0.0.1", 0), Handler)
    server.codes, server.issued, server.token_requests = {}, [], []
    with serving(server):
        yield server


def test_sign_in_through_the_oidc_provider(provider):
    identity = f"us-east-1:{secrets.token_hex(8)}"
    accounts.add_tenant(f"oidc-{secrets.token_hex(3)}", identity)
    provider.subject = identity
    env = {
        "KOPTER_API_JWT_ALGORITHM": "RS256",
        "KOPTER_API_JWT_KEY": PUBLIC_PEM,
        "KOPTER_API_JWT_AUDIENCE": CLIENT_ID,
        "KOPTER_API_JWT_ISSUER": provider.issuer,
        "KOPTER_WEB_OIDC_ISSUER": provider.issuer,
        "KOPTER_WEB_OIDC_CLIENT_ID": CLIENT_ID,
        "KOPTER_WEB_OIDC_SCOPES": "openid email",
    }
    assert PATHS
    with web_api(OUTPUT / "logs", env) as api, chromium(PATHS) as browser:
        browser.get(f"{api.base}/#/accounts")
        wait_ready(browser, "sign-in")
        browser.find_element("id", "sign-in").click()
        # The provider sends the browser back with a code; the app trades it for the token.
        wait_ready(browser, "accounts")
        assert browser.current_url == f"{api.base}/#/accounts"  # no code left in the URL
        assert browser.find_element("tag name", "h1").text == "Accounts"
        [exchange] = provider.token_requests
        assert exchange["redirect_uri"] == f"{api.base}/"
        assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []

        # A code coming back with a state the app did not send is refused.
        browser.execute_script("sessionStorage.clear()")
        browser.get(f"{api.base}/?code=forged&state=forged#/cost")
        wait_ready(browser, "sign-in")
        browser.find_element("id", "sign-in").click()
        wait_ready(browser, "cost")
        browser.execute_script(
            "sessionStorage.clear();"
            "sessionStorage.setItem('kopter.oidc', JSON.stringify("
            "{verifier: 'v', state: 'mine', hash: '#/cost'}))"
        )
        browser.get(f"{api.base}/?code=forged&state=theirs#/cost")
        wait_ready(browser, "sign-in")
        assert "state did not match" in browser.find_element("id", "sign-in-reason").text
        # Refused by the app itself: the token endpoint saw the two codes it issued, and no other.
        assert len(provider.issued) == 2
        assert [r["code"] for r in provider.token_requests] == provider.issued
