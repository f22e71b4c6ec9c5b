"""JSON text cut into the values of an array, or the members of an object, without decoding
them into Python objects.

A parser that meets a record nested past its recursion limit, or an escape it refuses (a lone
surrogate, ``"\\ud800"``), gives up on the whole document; cut apart first, such a record is one
value among the others, refused alone. Each value's end is found by msgspec (in C: a value
followed by more text makes it say where the first value ends) and, for a value msgspec refuses,
by a tokenizer that reads only strings and brackets and counts depth, never recursing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import msgspec

# A string, a bracket, or a quote that opens a string never closed.
_TOKENS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]|"', re.DOTALL)
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_SCALAR = re.compile(rb"[^\s,\]}]+")
_SPACE = re.compile(rb"[ \t\r\n]*")
# msgspec's word for a value followed by more text, with the 1-based offset of that text.
_TRAILING = re.compile(r"trailing characters \(byte (\d+)\)")
_OPEN, _CLOSE, _QUOTE = b"[{", b"]}", ord('"')
_WHITESPACE = b" \t\r\n"
_raw = msgspec.json.Decoder(msgspec.Raw)

Span = tuple[int, int]


class Malformed(ValueError):
    """The text is not one whole JSON array or object where one was expected."""


@dataclass
class Member:
    span: Span  # the value's
    values: list[Span] | None  # an array's values


def array_values(text: bytes, start: int) -> tuple[list[Span], int]:
    """The spans of the values of the array at ``start``, and the position past its end."""
    if text[start : start + 1] != b"[":
        raise Malformed(f"expected an array at byte {start:,}")
    spans: list[Span] = []
    at = _skip_space(text, start + 1)
    if text[at : at + 1] == b"]":
        return spans, at + 1
    while True:
        end = _value_end(text, at)
        spans.append((at, end))
        at, closed = _after_value(text, end, b"]")
        if closed:
            return spans, at


def object_members(text: bytes, start: int) -> tuple[dict[str, Member], int]:
    """Each member of the object at ``start`` by its key (an array member with its values),
    and the position past the object's end."""
    if text[start : start + 1] != b"{":
        raise Malformed(f"expected an object at byte {start:,}")
    members: dict[str, Member] = {}
    at = _skip_space(text, start + 1)
    if text[at : at + 1] == b"}":
        return members, at + 1
    while True:
        match = _STRING.match(text, at)
        if match is None:
            raise _early_or_unexpected(text, at, "a key")
        try:
            key = msgspec.json.decode(match.group(), type=str)
        except (msgspec.DecodeError, UnicodeDecodeError):
            raise Malformed(f"not a key at byte {at:,}") from None
        at = _skip_space(text, match.end())
        if text[at : at + 1] != b":":
            raise _early_or_unexpected(text, at, "':'")
        at = _skip_space(text, at + 1)
        values = None
        if text[at : at + 1] == b"[":  # each value found in turn: one bad value is no obstacle
            values, end = array_values(text, at)
        else:
            end = _value_end(text, at)
        members[key] = Member((at, end), values)
        at, closed = _after_value(text, end, b"}")
        if closed:
            return members, at


def _after_value(text: bytes, end: int, close: bytes) -> tuple[int, bool]:
    """Past what follows a value: the next value's start, or the container's end (True)."""
    at = _skip_space(text, end)
    separator = text[at : at + 1]
    if separator == close:
        return at + 1, True
    if separator != b",":
        raise _early_or_unexpected(text, at, f"',' or '{close.decode()}'")
    return _skip_space(text, at + 1), False


def _skip_space(text: bytes, at: int) -> int:
    match = _SPACE.match(text, at)
    return match.end() if match else at


def _early_or_unexpected(text: bytes, at: int, expected: str) -> Malformed:
    if at >= len(text):
        return Malformed(f"the JSON ends early (truncated?): expected {expected}")
    return Malformed(f"expected {expected} at byte {at:,}")


def _value_end(text: bytes, start: int) -> int:
    """The position just past the value at ``start``, in a container that goes on after it."""
    try:
        _raw.decode(memoryview(text)[start:])
    except msgspec.DecodeError as e:
        trailing = _TRAILING.search(str(e))
        if trailing is not None:
            after = start + int(trailing.group(1)) - 1  # the separator after the value
            if text[after : after + 1] in (b",", b"]", b"}"):
                return len(text[start:after].rstrip(_WHITESPACE)) + start
    except (UnicodeDecodeError, RecursionError):
        pass
    return _scanned_value_end(text, start)


def _scanned_value_end(text: bytes, start: int) -> int:
    """``_value_end`` for a value msgspec refuses: by the tokenizer."""
    first = text[start : start + 1]
    if first == b'"':
        match = _STRING.match(text, start)
        if match is None:
            raise Malformed(f"a string opened at byte {start:,} is never closed (truncated?)")
        return match.end()
    if not first or first not in (b"[", b"{"):
        match = _SCALAR.match(text, start)
        if match is None:
            raise _early_or_unexpected(text, start, "a value")
        return match.end()
    depth = 0
    for token in _TOKENS.finditer(text, start):
        at = token.start()
        char = text[at]
        if char == _QUOTE:
            if token.end() - at == 1:
                raise Malformed(f"a string opened at byte {at:,} is never closed (truncated?)")
        elif char in _OPEN:
            depth += 1
        elif char in _CLOSE:
            depth -= 1
            if depth == 0:
                return token.end()
    raise Malformed("the JSON ends early (truncated?)")
