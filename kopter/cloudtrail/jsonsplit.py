"""JSON text cut into the values of an array, or the members of an object, without parsing them.

A parser that meets a record nested past its recursion limit, or an escape it refuses (a lone
surrogate, ``"\\ud800"``), gives up on the whole document; cut apart first, such a record is one
value among the others, refused alone. Only strings and brackets are tokenized (a string may hold
any bracket), and depth is a counter, never a recursion.
"""

from __future__ import annotations

import re
from itertools import pairwise

import msgspec

# A string, a bracket or separator, or a quote that opens a string never closed.
_TOKENS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{},:]|"', re.DOTALL)
_OPEN, _CLOSE = b"[{", b"]}"
_QUOTE, _COMMA, _COLON = ord('"'), ord(","), ord(":")
_WHITESPACE = b" \t\r\n"

Span = tuple[int, int]


class Malformed(ValueError):
    """The text is not one whole JSON array or object where one was expected."""


def _separators(text: bytes, start: int) -> tuple[list[int], int]:
    """The commas and colons directly inside the array or object opening at ``start``, and the
    position just past its closing bracket."""
    depth = 0
    separators: list[int] = []
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
                return separators, token.end()
        elif depth == 1:
            separators.append(at)
    raise Malformed("the JSON ends early (truncated?)")


def _trimmed(text: bytes, start: int, end: int) -> Span:
    while start < end and text[start] in _WHITESPACE:
        start += 1
    while end > start and text[end - 1] in _WHITESPACE:
        end -= 1
    return start, end


def array_values(text: bytes, start: int) -> tuple[list[Span], int]:
    """The spans of the values of the array at ``start``, and the position past its end."""
    if text[start : start + 1] != b"[":
        raise Malformed(f"expected an array at byte {start:,}")
    separators, end = _separators(text, start)
    bounds = [start, *(at for at in separators if text[at] == _COMMA), end - 1]
    spans = [_trimmed(text, a + 1, b) for a, b in pairwise(bounds)]
    if len(spans) == 1 and spans[0][0] == spans[0][1]:
        return [], end  # []
    return spans, end


def object_members(text: bytes, start: int) -> tuple[dict[str, Span], int]:
    """The span of each member's value of the object at ``start`` by its key, and the position
    past the object's end."""
    if text[start : start + 1] != b"{":
        raise Malformed(f"expected an object at byte {start:,}")
    separators, end = _separators(text, start)
    members: dict[str, Span] = {}
    key_start = start + 1
    key_end = None
    for at in [*separators, end - 1]:
        if text[at] == _COLON and key_end is None:
            key_end = at
            continue
        if key_end is None:
            if _trimmed(text, key_start, at) == (at, at) and at == end - 1:
                break  # {}
            raise Malformed(f"expected a key and ':' before byte {at:,}")
        key_span = _trimmed(text, key_start, key_end)
        try:
            key = msgspec.json.decode(text[key_span[0] : key_span[1]], type=str)
        except (msgspec.DecodeError, UnicodeDecodeError):
            raise Malformed(f"not a key at byte {key_span[0]:,}") from None
        members[key] = _trimmed(text, key_end + 1, at)
        key_start, key_end = at + 1, None
    return members, end
