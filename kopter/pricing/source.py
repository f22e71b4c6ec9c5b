"""Where offer files come from: the AWS Price List bulk API over HTTP(S) (``KOPTER_PRICING_URL``,
served from 127.0.0.1 in tests and ``make run``), or a local file.

Downloads are conditional (If-None-Match with the ETag kept from the last import) and streamed:
the body is handed on in chunks as it arrives and never held whole. Any failure to get a whole
body (an HTTP error, a timeout, a connection cut short) is ``PriceListUnavailable``, so the caller
keeps the prices it has.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import msgspec
import urllib3

from kopter.errors import KopterError
from kopter.settings import Settings

REGION_INDEX_PATH = "/offers/v1.0/aws/AmazonEC2/current/region_index.json"
CHUNK_BYTES = 1 << 20
# ".../AmazonEC2/20231102210837/us-east-1/index.json": the version is in the path.
_VERSION_IN_URL = re.compile(r"/AmazonEC2/([^/]+)/[^/]+/index\.json$")


class PriceListUnavailable(KopterError):
    """The price list could not be read whole: the prices already stored stay in place."""


@dataclass(frozen=True)
class RegionOffer:
    region: str
    url: str
    version: str


@dataclass(frozen=True)
class Download:
    """A body being streamed, or ``not_modified`` (HTTP 304: nothing to read)."""

    url: str
    etag: str | None
    chunks: Iterator[bytes]
    size: int | None = None
    not_modified: bool = False


class HttpSource:
    def __init__(self, base_url: str, connect_timeout: float = 5, read_timeout: float = 60) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=connect_timeout, read=read_timeout),
            retries=urllib3.Retry(
                total=3, backoff_factor=0.5, status_forcelist=(500, 502, 503, 504)
            ),
        )

    @classmethod
    def from_settings(cls, settings: Settings, base_url: str | None = None) -> HttpSource:
        return cls(base_url or settings.pricing_url, read_timeout=settings.pricing_timeout)

    def url(self, path: str) -> str:
        return urljoin(self.base_url + "/", path.lstrip("/"))

    def region_index(self, etag: str | None) -> tuple[dict[str, RegionOffer] | None, str | None]:
        """The regions' current offer files, or None when unchanged since ``etag``."""
        download = self.download(self.url(REGION_INDEX_PATH), etag)
        if download.not_modified:
            return None, etag
        body = b"".join(download.chunks)
        try:
            index = msgspec.json.decode(body)
            regions = index["regions"]
            offers = {}
            for region, entry in regions.items():
                path = entry["currentVersionUrl"]
                if not path.startswith("/offers/"):  # only ever fetch from the configured base
                    raise KeyError(f"{region}: currentVersionUrl {path!r} is not a path")
                match = _VERSION_IN_URL.search(path)
                version = match.group(1) if match else path
                offers[region] = RegionOffer(region, self.url(path), version)
        except (msgspec.DecodeError, KeyError, TypeError, AttributeError) as e:
            raise PriceListUnavailable(
                f"{download.url} is not a region index ({type(e).__name__}: {e})"
            ) from None
        return offers, download.etag

    def download(self, url: str, etag: str | None = None) -> Download:
        headers = {"If-None-Match": etag} if etag else {}
        try:
            response = self._http.request(
                "GET", url, headers=headers, preload_content=False, decode_content=True
            )
        except urllib3.exceptions.HTTPError as e:
            raise PriceListUnavailable(f"GET {url}: {_reason(e)}") from None
        if response.status == 304:
            response.release_conn()
            return Download(url, etag, iter(()), not_modified=True)
        if response.status != 200:
            response.drain_conn()
            raise PriceListUnavailable(f"GET {url}: HTTP {response.status}")
        length = response.headers.get("Content-Length")
        return Download(
            url,
            response.headers.get("ETag"),
            _stream(url, response),
            int(length) if length and length.isdigit() else None,
        )


def _stream(url: str, response: Any) -> Iterator[bytes]:
    try:
        yield from response.stream(CHUNK_BYTES)
    except urllib3.exceptions.HTTPError as e:
        raise PriceListUnavailable(f"GET {url}: {_reason(e)}") from None
    finally:
        response.release_conn()


def _reason(error: Exception) -> str:
    reason = getattr(error, "reason", None) or error
    return f"{type(reason).__name__}: {reason}"


def open_file(path: Path) -> Download:
    try:
        handle = path.open("rb")
    except OSError as e:
        raise PriceListUnavailable(f"{path}: {e.strerror}") from None

    def chunks() -> Iterator[bytes]:
        with handle:
            while chunk := handle.read(CHUNK_BYTES):
                yield chunk

    return Download(str(path), None, chunks(), path.stat().st_size)


def is_url(source: str) -> bool:
    return urlsplit(source).scheme in ("http", "https")
