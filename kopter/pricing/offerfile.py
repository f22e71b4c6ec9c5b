"""An AWS Price List offer file (a region's ``index.json``), read as a stream of byte chunks.

A region's file is hundreds of MB: ``json.load`` needs gigabytes and an event-per-token parser
(ijson) reads tens of MB/s. This reader walks the top two levels itself and hands msgspec whole
batches of entries of the big objects (``products``, ``terms.OnDemand``, ``terms.Reserved``) to
decode into typed structs, so memory holds a few MB of the file at a time and the parsing runs at
msgspec's speed.

A batch ends where a brace count says an entry closes. Braces inside strings can mislead the
count; msgspec then refuses the batch (a cut inside a string or at the wrong depth is never valid
JSON) and an exact, slower tokenizer finds the boundary instead. So the reader is exact for any
JSON and fast for the files AWS publishes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import msgspec

from kopter.errors import KopterError

BATCH_BYTES = 1 << 21
# Below this many bytes, a window is tokenized exactly instead of cut by a brace count.
EXACT_WINDOW = 1 << 16
# How many '}' the count looks back over for an entry's end: an entry has a few dozen.
MAX_CANDIDATES = 256
WHITESPACE = b" \t\r\n"
# The exact tokenizer: a string, a structural character, or a quote that opens a string this
# buffer does not close.
_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[{}\[\],]|"', re.DOTALL)
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_SCALAR = re.compile(rb"[^\s,\]}]+")


class OfferFileError(KopterError):
    """The file is not a whole, well-formed offer file (truncated, not JSON, wrong shape)."""


# --- what kopter reads of the file: unknown fields are skipped by msgspec at C speed ---------


class ProductAttributes(msgspec.Struct, gc=False):
    instanceType: str = ""
    operatingSystem: str = ""
    tenancy: str = ""
    licenseModel: str = ""
    preInstalledSw: str = ""
    capacitystatus: str = ""
    marketoption: str = ""
    regionCode: str = ""
    location: str = ""  # files older than regionCode name the region only here
    usagetype: str = ""
    operation: str = ""


class Product(msgspec.Struct, gc=False):
    productFamily: str = ""
    attributes: ProductAttributes = msgspec.field(default_factory=ProductAttributes)


class Usd(msgspec.Struct, gc=False):
    USD: str | None = None


class PriceDimension(msgspec.Struct, gc=False):
    unit: str = ""
    pricePerUnit: Usd = msgspec.field(default_factory=Usd)


class TermAttributes(msgspec.Struct, gc=False):
    LeaseContractLength: str = ""
    OfferingClass: str = ""
    PurchaseOption: str = ""


class Offer(msgspec.Struct, gc=False):
    priceDimensions: dict[str, PriceDimension] = {}
    termAttributes: TermAttributes = msgspec.field(default_factory=TermAttributes)


PRODUCTS = msgspec.json.Decoder(dict[str, Product])
# Terms first as raw bytes per SKU: most SKUs are not instances kopter prices, and skipping their
# bytes is much cheaper than building their objects.
RAW_ENTRIES = msgspec.json.Decoder(dict[str, msgspec.Raw])
OFFERS = msgspec.json.Decoder(dict[str, Offer])


@dataclass
class Products:
    entries: dict[str, Product]


@dataclass
class Terms:
    kind: str  # "OnDemand", "Reserved"
    entries: dict[str, msgspec.Raw]  # SKU -> its offers, for ``OFFERS``


@dataclass
class OfferHeader:
    fields: dict[str, Any] = field(default_factory=dict)

    @property
    def version(self) -> str | None:
        value = self.fields.get("version")
        return value if isinstance(value, str) else None


def read_offer(chunks: Iterable[bytes], header: OfferHeader) -> Iterator[Products | Terms]:
    """Batches of products and of terms, in file order. ``header`` collects the small top-level
    fields (version, publicationDate, …) as they pass. Raises ``OfferFileError``."""
    reader = _Reader(iter(chunks))
    try:
        for key in reader.object_keys():
            if key == "products":
                for products in reader.entries(PRODUCTS):
                    yield Products(products)
            elif key == "terms":
                for kind in reader.object_keys():
                    for batch in reader.entries(RAW_ENTRIES):
                        yield Terms(kind, batch)
            else:
                header.fields[key] = reader.small_value()
        if reader.next_byte() != -1:
            raise reader.error("data after the end of the offer")
    except msgspec.ValidationError as e:
        raise reader.error(f"not an offer file ({e})") from None
    except (msgspec.DecodeError, UnicodeDecodeError) as e:  # msgspec's error for non-UTF-8
        raise reader.error(f"malformed JSON ({e})") from None
    except RecursionError:  # msgspec recurses once per level; no offer file nests so deep
        raise reader.error("JSON nested too deeply") from None


class _Reader:
    """A byte buffer over the chunks, consumed from ``pos``; ``offset`` counts what was dropped
    before ``data`` so that errors and progress can say where in the file they are."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self.data = b""
        self.pos = 0
        self.offset = 0
        self.eof = False

    def error(self, what: str, at: int | None = None) -> OfferFileError:
        """``at``: a position in ``data``, when it is not ``pos``."""
        return OfferFileError(f"{what} at byte {self.offset + (self.pos if at is None else at):,}")

    def fill(self, want: int) -> None:
        """Make ``want`` bytes available from ``pos``, unless the stream ends first."""
        if len(self.data) - self.pos >= want or self.eof:
            return
        parts = [self.data[self.pos :]]
        self.offset += self.pos
        self.pos = 0
        have = len(parts[0])
        while have < want:
            chunk = next(self._chunks, None)
            if chunk is None:
                self.eof = True
                break
            parts.append(chunk)
            have += len(chunk)
        self.data = b"".join(parts)

    def next_byte(self) -> int:
        """The next byte that is not whitespace (-1 at the end), left unconsumed."""
        while True:
            data, pos = self.data, self.pos
            while pos < len(data) and data[pos] in WHITESPACE:
                pos += 1
            self.pos = pos
            if pos < len(data):
                return data[pos]
            if self.eof:
                return -1
            self.fill(BATCH_BYTES)

    def expect(self, token: bytes) -> None:
        found = self.next_byte()
        if found == -1:
            raise self.error(f"the file ends early (truncated?): expected {token.decode()!r}")
        if found != token[0]:
            raise self.error(f"expected {token.decode()!r}")
        self.pos += 1

    def object_keys(self) -> Iterator[str]:
        """The keys of the object that starts here; the caller consumes each key's value."""
        self.expect(b"{")
        if self.next_byte() == ord("}"):
            self.pos += 1
            return
        while True:
            self.next_byte()
            self.fill(4096)
            match = _STRING.match(self.data, self.pos)
            if match is None:
                raise self.error("expected a key")
            self.pos = match.end()
            key = msgspec.json.decode(match.group())
            self.expect(b":")
            yield key
            separator = self.next_byte()
            if separator == -1:
                raise self.error("the file ends inside an object (truncated?)")
            if separator not in b",}":
                raise self.error("expected ',' or '}'")
            self.pos += 1
            if separator == ord("}"):
                return

    def small_value(self) -> Any:
        """A value that fits in memory (the header's strings, a short list)."""
        first = self.next_byte()
        if first == -1:
            raise self.error("the file ends early (truncated?): expected a value")
        if first in b"{[":
            end = self._value_end()
        elif first == ord('"'):
            self.fill(1 << 16)
            match = _STRING.match(self.data, self.pos)
            if match is None:
                raise self.error("unterminated string")
            end = match.end()
        else:
            self.fill(64)
            match = _SCALAR.match(self.data, self.pos)
            if match is None:
                raise self.error("expected a value")
            end = match.end()
        try:
            value = msgspec.json.decode(self.data[self.pos : end])
        except msgspec.DecodeError:
            raise self.error("malformed value") from None
        self.pos = end
        return value

    def _value_end(self) -> int:
        want = BATCH_BYTES
        while True:
            self.fill(want)
            depth = 0
            for token in _TOKENS.finditer(self.data, self.pos):
                char = token.group()
                if char in (b"{", b"["):
                    depth += 1
                elif char in (b"}", b"]"):
                    depth -= 1
                    if depth == 0:
                        return token.end()
                elif char == b'"':
                    break
            if self.eof:
                raise self.error("the file ends inside a value (truncated?)")
            want *= 2

    def entries(self, decoder: msgspec.json.Decoder[Any]) -> Iterator[Any]:
        """The object that starts here, decoded a batch of entries at a time: each batch is a
        JSON object of consecutive entries."""
        self.expect(b"{")
        want = BATCH_BYTES
        while True:
            if self.next_byte() == ord("}"):
                self.pos += 1
                return
            self.fill(want)
            found = self._batch(decoder)
            if found is None:  # one entry is longer than the buffer: read more
                if self.eof:
                    raise self.error("the file ends inside an object (truncated?)")
                want *= 2
                continue
            batch, end, closed = found
            want = BATCH_BYTES
            self.pos = end + 1  # past the ',' or the closing '}'
            if batch:
                yield batch
            if closed:
                return

    def _batch(self, decoder: msgspec.json.Decoder[Any]) -> tuple[Any, int, bool] | None:
        """The longest run of whole entries in the buffer, decoded: (batch, position of the ','
        or '}' after it, whether that is the object's '}'). None: no entry ends in the buffer.

        A window that holds the object's end, or braces in strings, defeats the count; the
        window is halved until the count is right or it is small enough to tokenize."""
        limit = len(self.data)
        while limit - self.pos > EXACT_WINDOW:
            found = self._counted_batch(decoder, limit)
            if found is not None:
                return found
            limit = self.pos + (limit - self.pos) // 2
        window = EXACT_WINDOW
        while True:
            end = min(len(self.data), self.pos + window)
            cut = self._exact_cut(end)
            if cut is not None:
                break
            if end == len(self.data):
                return None
            window *= 4
        end, closed = cut
        try:
            batch = decoder.decode(b"{" + self.data[self.pos : end] + b"}")
        except msgspec.ValidationError:
            raise
        except msgspec.DecodeError as e:
            raise self.error(f"malformed JSON ({e})") from None
        return batch, end, closed

    def _counted_batch(
        self, decoder: msgspec.json.Decoder[Any], limit: int
    ) -> tuple[Any, int, bool] | None:
        """Cut after the last '}' before ``limit`` that a brace count puts between two entries,
        looking back over a few candidates only, and decode."""
        data, start = self.data, self.pos
        i = limit
        depth = data.count(b"{", start, i) - data.count(b"}", start, i)
        for _ in range(MAX_CANDIDATES):
            j = data.rfind(b"}", start, i)
            if j < 0:
                return None
            depth -= data.count(b"{", j + 1, i) - data.count(b"}", j + 1, i)
            i = j
            if depth == 0:  # after this '}', the count is back between entries
                break
            depth += 1  # the '}' at j, now outside the span [start, i)
        else:
            return None
        k = j + 1
        while k < len(data) and data[k] in WHITESPACE:
            k += 1
        if k >= len(data) or data[k] not in b",}":
            return None
        try:
            batch = decoder.decode(b"{" + data[start : j + 1] + b"}")
        except msgspec.DecodeError:  # a cut the count got wrong
            return None
        return batch, k, data[k] == ord("}")

    def _exact_cut(self, end: int) -> tuple[int, bool] | None:
        """(position of the ',' after the last whole entry before ``end``, or of the object's
        '}'; whether it is the '}'), by tokenizing. None when no entry ends before ``end``."""
        depth, last_comma = 0, None
        for token in _TOKENS.finditer(self.data, self.pos, end):
            char = token.group()
            if char in (b"{", b"["):
                depth += 1
            elif char in (b"}", b"]"):
                depth -= 1
                if depth < 0:  # the object's end, which msgspec does not see: check it here
                    if char != b"}":
                        raise self.error("expected ',' or '}'", at=token.start())
                    return token.start(), True
            elif char == b"," and depth == 0:
                last_comma = token.start()
            elif char == b'"':
                break  # a string the window cuts off
        return (last_comma, False) if last_comma is not None else None
