"""A Sigma field name read from a CloudTrail record, as Sigma means it.

A field name is a dotted path into the record (``userIdentity.sessionContext.sessionIssuer.type``);
where the path meets an array, every element is followed, so the field has several values and a
comparison holds when one of them matches. A key that itself holds a dot is found too (the path
``a.b.c`` reads ``{"a": {"b.c": 1}}``). JSON null, a missing key and an empty array are the same:
no value, which is what Sigma's ``null`` and ``exists: false`` ask for.

Values are compared as text: a string as it is, a number as JSON writes it (``5``, ``2.5``), a
boolean as ``true`` or ``false`` (CloudTrail writes ``"enable": false`` where a rule says
``'false'``). A comparison against an object is a comparison against every value inside it, at
any depth: ``requestParameters|contains: 'Suspended'`` holds for
``{"VersioningConfiguration": {"Status": "Suspended"}}``. Keys are not values, and the object's
JSON text is not compared, because a rule's quotes would then depend on how the JSON was escaped
(a policy document inside ``requestParameters`` is a string whose quotes JSON escapes).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any


class Field:
    """One field name, split once, read from any number of records."""

    __slots__ = ("_dotted", "_parts", "_steps", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        parts = name.split(".")
        # From each position, every key the rest of the path could be: "a", "a.b", "a.b.c".
        self._steps = [
            [(".".join(parts[i:j]), j) for j in range(i + 1, len(parts) + 1)]
            for i in range(len(parts))
        ]
        self._parts = parts
        self._dotted = [[key for key, _ in step[1:]] for step in self._steps]

    def values(self, record: Mapping[str, Any]) -> list[Any]:
        """Every value the path reaches: arrays followed, nulls dropped, objects kept whole."""
        node: Any = record
        for part, dotted in zip(self._parts, self._dotted, strict=True):
            # The usual record: objects all the way, no key with a dot in it on the way.
            if type(node) is not dict:
                return self._walk(record)
            for key in dotted:
                if key in node:
                    return self._walk(record)
            node = node.get(part)
            if node is None:
                return []
        return self._walk(node, len(self._parts)) if type(node) is list else [node]

    def _walk(self, start: Any, depth: int = 0) -> list[Any]:
        found: list[Any] = []
        pending: list[tuple[Any, int]] = [(start, depth)]
        steps, end = self._steps, len(self._steps)
        while pending:
            node, depth = pending.pop()
            if type(node) is list:
                pending.extend((element, depth) for element in node)
            elif depth == end:
                if node is not None:
                    found.append(node)
            elif isinstance(node, Mapping):
                for key, after in steps[depth]:
                    if key in node:
                        pending.append((node[key], after))
        return found

    def texts(self, record: Mapping[str, Any]) -> Iterator[str]:
        """The field's values as text, an object's as the text of every value inside it."""
        for value in self.values(record):
            yield from texts(value)


def texts(value: Any) -> Iterator[str]:
    """A value as text; an array or an object as the texts of every value inside."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, bool):
        yield "true" if value else "false"
    elif isinstance(value, int | float):
        yield str(value)
    elif isinstance(value, Mapping):
        for inner in value.values():
            yield from texts(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from texts(inner)
