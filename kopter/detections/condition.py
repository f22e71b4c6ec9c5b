"""A Sigma rule's condition, as pySigma parsed it, made one predicate on a record.

pySigma resolves the condition (``selection and not 1 of filter_*``, ``all of them``, brackets)
into a tree of AND, OR and NOT over field comparisons; a list of values is an OR, ``|all`` an
AND, ``|neq`` a NOT. kopter walks that tree once, at load, into nested closures, and reads from it
which event names and sources a matching record must have (``required``), for the index.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)

from kopter.detections import values
from kopter.detections.values import Predicate

Tree = Any  # what pySigma's SigmaCondition.parse() returns


class Unsupported(Exception):
    """A condition form kopter does not evaluate: the message names it."""


def compile_tree(tree: Tree) -> Predicate:
    if isinstance(tree, ConditionFieldEqualsValueExpression):
        try:
            return values.predicate(tree.field, tree.value)
        except values.UnsupportedValue as e:
            raise Unsupported(f"{e} on field {tree.field!r}") from None
    if isinstance(tree, ConditionValueExpression):
        raise Unsupported(
            f"a keyword (a value without a field: {tree.value}): name the field to compare"
        )
    if isinstance(tree, ConditionNOT):
        inner = compile_tree(tree.args[0])
        return lambda record: not inner(record)
    if isinstance(tree, ConditionAND | ConditionOR):
        both = _both if isinstance(tree, ConditionAND) else _either
        return _balanced(both, [compile_tree(arg) for arg in tree.args])
    raise Unsupported(f"a condition of type {type(tree).__name__}")


def _balanced(
    pair: Callable[[Predicate, Predicate], Predicate], parts: list[Predicate]
) -> Predicate:
    """Parts joined in pairs as a balanced tree: a list of 300 values nests 9 calls deep, not
    300, whatever stack the caller already has."""
    if len(parts) == 1:
        return parts[0]
    middle = len(parts) // 2
    return pair(_balanced(pair, parts[:middle]), _balanced(pair, parts[middle:]))


def _both(first: Predicate, second: Predicate) -> Predicate:
    return lambda record: first(record) and second(record)


def _either(first: Predicate, second: Predicate) -> Predicate:
    return lambda record: first(record) or second(record)


def comparisons(tree: Tree) -> int:
    """How many field comparisons the tree holds: at most what one record costs to judge."""
    if isinstance(tree, ConditionNOT | ConditionAND | ConditionOR):
        return sum(comparisons(arg) for arg in tree.args)
    return 1


def required(tree: Tree, field: str) -> frozenset[str] | None:
    """The lowercased texts ``field`` must equal for the tree to hold, or None when it need not
    equal any in particular (a wildcard, a regular expression, under a NOT, an OR with an
    unconstrained side)."""
    if isinstance(tree, ConditionFieldEqualsValueExpression):
        text = values.literal(tree.value) if tree.field == field else None
        return None if text is None else frozenset((text,))
    if isinstance(tree, ConditionAND):
        known = [found for arg in tree.args if (found := required(arg, field)) is not None]
        return frozenset.intersection(*known) if known else None
    if isinstance(tree, ConditionOR):
        union: frozenset[str] = frozenset()
        for arg in tree.args:
            side = required(arg, field)
            if side is None:
                return None
            union |= side
        return union
    return None
