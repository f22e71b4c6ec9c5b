"""One Sigma comparison (a field and one value, as pySigma parsed it) made a predicate on a record.

Strings compare case-insensitively and as whole values, with ``*`` (any run of characters, none
included) and ``?`` (one character) as wildcards; pySigma has already turned ``contains``,
``startswith`` and ``endswith`` into wildcards and ``\\*`` into a literal star. Whatever a
pattern is, it runs in linear time: plain equality, prefix, suffix and substring tests where the
wildcards allow, else RE2 (no backtracking), as for ``re``. A value type kopter does not know is
refused by the loader (``UnsupportedValue``), never compared wrongly.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

import re2
from sigma.types import (
    CompareOperators,
    SigmaBool,
    SigmaCasedString,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaExists,
    SigmaFieldReference,
    SigmaNull,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaRegularExpressionFlag,
    SigmaString,
    SpecialChars,
)

from kopter.detections.fields import Field, texts

Predicate = Callable[[Mapping[str, Any]], bool]
TextTest = Callable[[str], bool]

_RE_FLAGS = {
    SigmaRegularExpressionFlag.IGNORECASE: "i",
    SigmaRegularExpressionFlag.MULTILINE: "m",
    SigmaRegularExpressionFlag.DOTALL: "s",
}
_COMPARE: dict[CompareOperators, Callable[[float, float], bool]] = {
    CompareOperators.LT: lambda a, b: a < b,
    CompareOperators.LTE: lambda a, b: a <= b,
    CompareOperators.GT: lambda a, b: a > b,
    CompareOperators.GTE: lambda a, b: a >= b,
}


_QUIET = re2.Options()
_QUIET.log_errors = False  # RE2 would print a bad expression to stderr; the loader refuses it


class UnsupportedValue(Exception):
    """A value kopter cannot compare: the message names it."""


def predicate(field: str, value: Any) -> Predicate:
    """``field`` compared with one parsed value: true when one of the field's values matches."""
    reading = Field(field)
    if isinstance(value, SigmaNull):
        return lambda record: not reading.values(record)
    if isinstance(value, SigmaExists):
        wanted = bool(value)
        return lambda record: bool(reading.values(record)) is wanted
    if isinstance(value, SigmaFieldReference):
        return _reference(reading, value)
    test = text_test(value)
    if "." not in field:  # the common case, read without walking a path
        return _top_level(field, test)

    def matches(record: Mapping[str, Any]) -> bool:
        return any(_passes(test, found) for found in reading.values(record))

    return matches


def _top_level(name: str, test: TextTest) -> Predicate:
    def matches(record: Mapping[str, Any]) -> bool:
        found = record.get(name)
        if type(found) is str:
            return test(found)
        return found is not None and _passes(test, found)

    return matches


def _passes(test: TextTest, value: Any) -> bool:
    """Whether one value, or a value inside it, passes: a string is tested as it is."""
    if type(value) is str:
        return test(value)
    return any(test(text) for text in texts(value))


def text_test(value: Any) -> TextTest:
    """The test one text of a field must pass for ``value`` (every kind but null, exists, ref)."""
    if isinstance(value, SigmaCasedString):
        return _pattern(value, cased=True)
    if isinstance(value, SigmaString):
        return _pattern(value, cased=False)
    if isinstance(value, SigmaBool):
        return _equals("true" if value.boolean else "false", cased=False)
    if isinstance(value, SigmaNumber):
        return _equals(str(value.number), cased=True)
    if isinstance(value, SigmaRegularExpression):
        return _regex(value)
    if isinstance(value, SigmaCIDRExpression):
        return _cidr(value)
    if isinstance(value, SigmaCompareExpression) and value.op in _COMPARE:
        return _compare(value)
    raise UnsupportedValue(f"a value of type {type(value).__name__} ({value})")


def literal(value: Any) -> str | None:
    """The one text a string value equals, folded, when it has no wildcard; else None."""
    if type(value) is SigmaString and all(isinstance(part, str) for part in value.s):
        return "".join(str(part) for part in value.s).lower()
    return None


def _equals(wanted: str, *, cased: bool) -> TextTest:
    if cased:
        return lambda text: text == wanted
    wanted = wanted.lower()
    return lambda text: text.lower() == wanted


def _pattern(value: SigmaString, *, cased: bool) -> TextTest:
    parts: list[str | SpecialChars] = []
    for part in value.s:
        if isinstance(part, SpecialChars):
            parts.append(part)
        elif isinstance(part, str):
            parts.append(part if cased else part.lower())
        else:
            raise UnsupportedValue(f"a placeholder ({part}) in {value.original!r}")
    fold: Callable[[str], str] = (lambda text: text) if cased else str.lower
    star, one = SpecialChars.WILDCARD_MULTI, SpecialChars.WILDCARD_SINGLE
    if one not in parts:
        words = [part for part in parts if isinstance(part, str)]
        shape = tuple(part is star for part in parts)
        if not words:  # "*": any value at all, an empty string included
            return lambda text: True if star in parts else text == ""
        word = words[0]
        if shape == (False,):
            return lambda text: fold(text) == word
        if shape == (True, False, True):
            return lambda text: word in fold(text)
        if shape == (False, True):
            return lambda text: fold(text).startswith(word)
        if shape == (True, False):
            return lambda text: fold(text).endswith(word)
    source = "".join(
        ".*" if part is star else "." if part is one else re.escape(str(part)) for part in parts
    )
    compiled = _re2(f"(?s){source}", value.original)
    return lambda text: compiled.fullmatch(fold(text)) is not None


def _regex(value: SigmaRegularExpression) -> TextTest:
    flags = "".join(sorted(_RE_FLAGS[flag] for flag in value.flags))
    source = str(value.regexp)
    compiled = _re2(f"(?{flags}){source}" if flags else source, source)
    return lambda text: compiled.search(text) is not None


def _re2(source: str, shown: str) -> Any:
    try:
        return re2_compile(source)
    except re2.error as e:
        raise UnsupportedValue(f"the regular expression {shown!r} ({e})") from None


def re2_compile(source: str) -> Any:
    """An RE2 pattern, or ``re2.error`` with RE2's reason as text."""
    try:
        return re2.compile(source, _QUIET)
    except re2.error as e:
        reason = e.args[0] if e.args else e
        text = reason.decode(errors="replace") if isinstance(reason, bytes) else str(reason)
        raise re2.error(text) from None


def _cidr(value: SigmaCIDRExpression) -> TextTest:
    network = value.network

    def within(text: str) -> bool:
        try:
            return ipaddress.ip_address(text) in network
        except ValueError:  # "AWS Internal", a service's name: not an address
            return False

    return within


def _compare(value: SigmaCompareExpression) -> TextTest:
    compare, bound = _COMPARE[value.op], float(value.number.number)

    def holds(text: str) -> bool:
        try:
            number = float(text)
        except ValueError:
            return False
        return math.isfinite(number) and compare(number, bound)

    return holds


def _reference(reading: Field, value: SigmaFieldReference) -> Predicate:
    """Two fields of one record compared (``fieldref``), case-insensitively; with ``contains``,
    ``startswith`` or ``endswith`` the other field's value is found inside this one's."""
    other = Field(value.field)
    if value.starts_with and value.ends_with:
        related: Callable[[str, str], bool] = lambda mine, theirs: theirs in mine  # noqa: E731
    elif value.starts_with:
        related = str.startswith
    elif value.ends_with:
        related = str.endswith
    else:
        related = str.__eq__

    def matches(record: Mapping[str, Any]) -> bool:
        theirs = [text.lower() for text in other.texts(record)]
        return any(related(mine.lower(), t) for mine in reading.texts(record) for t in theirs)

    return matches
