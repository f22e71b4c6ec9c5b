"""The guard between a tenant's URL and kopter's own network.

A channel's URL is the tenant's input, and a worker calls it from inside kopter's network: a URL
naming an internal address (the instance metadata service at 169.254.169.254, a Redis on a
private subnet, the worker's own loopback) would make kopter call there on the tenant's behalf.
So only http and https URLs are taken, their host is resolved, and the URL is refused when any
address it resolves to is not public: private, loopback, link-local, multicast, reserved,
unspecified or shared (carrier-grade NAT), an IPv4 address carried inside IPv6 (IPv4-mapped,
6to4, NAT64) judged as that IPv4 address. This happens when a channel is added and again at each
delivery, which then connects to the very address it checked (DNS may answer differently a
second later). ``KOPTER_CHANNELS_ALLOW_PRIVATE=true`` lifts it, for a local stack and the tests.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from kopter.errors import KopterError, Refused

MAX_URL_LENGTH = 2048
SCHEMES = {"http": 80, "https": 443}
SLACK_HOSTS = frozenset({"hooks.slack.com", "hooks.slack-gov.com"})
_HOSTNAME = re.compile(r"(?=.{1,253}$)[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\.?")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
# Checked in this order: the first that holds names the refusal (a loopback address is also
# private to Python, and "loopback" says more).
_KINDS = (
    ("is_unspecified", "the unspecified address"),
    ("is_loopback", "a loopback address"),
    ("is_link_local", "a link-local address"),
    ("is_multicast", "a multicast address"),
    ("is_private", "a private address"),
    ("is_reserved", "a reserved address"),
    ("is_site_local", "a site-local address"),
)
# Not routable on the internet, yet public to Python 3.11's ``is_global``.
_ALSO_NOT_PUBLIC = (
    (ipaddress.ip_network("192.0.0.0/24"), "an IETF protocol address"),
    (ipaddress.ip_network("100.64.0.0/10"), "a shared (carrier-grade NAT) address"),
)

Resolver = Callable[..., list[tuple[Any, ...]]]


class Unresolvable(KopterError):
    """The host does not resolve now: a delivery tries again later."""


@dataclass(frozen=True)
class Endpoint:
    url: str
    scheme: str
    host: str  # without the brackets of an IPv6 literal
    port: int
    target: str  # what the request line asks for: the path and query
    host_header: str  # the URL's host and port, as the Host header carries them


def endpoint(url: str) -> Endpoint:
    """The URL's parts, or Refused saying what is wrong with it."""
    if len(url) > MAX_URL_LENGTH:
        raise Refused(f"the URL is longer than {MAX_URL_LENGTH} characters")
    if any(c.isspace() or not c.isprintable() for c in url):
        raise Refused("the URL holds spaces or control characters")
    parts = urlsplit(url)
    if parts.scheme.lower() not in SCHEMES:
        raise Refused(f"{url!r} is not an http or https URL")
    if parts.username is not None or parts.password is not None:
        raise Refused("the URL holds a user name or password: a webhook is signed instead")
    if parts.fragment:
        raise Refused("the URL has a #fragment, which is never sent")
    host = parts.hostname or ""
    if not host or not (_HOSTNAME.fullmatch(host) or _is_ip(host)):
        raise Refused(f"{url!r} names no valid host")
    try:
        port = parts.port or SCHEMES[parts.scheme.lower()]
    except ValueError:
        raise Refused(f"{url!r} has a port that is not a number from 0 to 65535") from None
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Endpoint(url, parts.scheme.lower(), host, port, target, parts.netloc)


def slack_endpoint(url: str, allow_private: bool) -> Endpoint:
    """A Slack incoming webhook: https://hooks.slack.com/services/… (a local stand-in only when
    private addresses are allowed)."""
    found = endpoint(url)
    is_slack = (
        found.scheme == "https"
        and found.host.lower() in SLACK_HOSTS
        and found.target.startswith("/services/")
    )
    if not is_slack and not allow_private:
        raise Refused("a Slack URL is an incoming webhook: https://hooks.slack.com/services/…")
    return found


def refusal(address: str) -> str | None:
    """What makes ``address`` (an IP address as resolved) one kopter must not connect to
    ("a loopback address"), or None when it is public."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 zone: fe80::1%eth0
    carried = _carried_ipv4(ip)
    if carried is not None:
        inner = refusal(str(carried))
        return f"an IPv6 address carrying {carried}, {inner}" if inner else None
    for attribute, kind in _KINDS:
        if getattr(ip, attribute, False):
            return kind
    for network, kind in _ALSO_NOT_PUBLIC:
        if ip.version == network.version and ip in network:
            return kind
    if not ip.is_global:
        return "not a public address"
    return None


def addresses(
    found: Endpoint, allow_private: bool, resolve: Resolver = socket.getaddrinfo
) -> list[str]:
    """The addresses to connect to for ``found``, each one checked: Refused when any of them is
    not public (unless allowed), Unresolvable when the name does not resolve now."""
    try:
        answers = resolve(found.host, found.port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as e:
        raise Unresolvable(f"{found.host} does not resolve: {e}") from None
    resolved = list(dict.fromkeys(str(answer[4][0]) for answer in answers))
    if not resolved:
        raise Unresolvable(f"{found.host} resolves to no address")
    if not allow_private:
        for address in resolved:
            reason = refusal(address)
            if reason:
                what = (
                    f"{address} is {reason}"
                    if found.host == address
                    else f"{found.host} resolves to {address}, {reason}"
                )
                raise Refused(
                    f"{what}: kopter calls public addresses only (KOPTER_CHANNELS_ALLOW_PRIVATE)"
                )
    return resolved


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _carried_ipv4(
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> ipaddress.IPv4Address | None:
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None
