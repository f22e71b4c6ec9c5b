"""What every paged listing shares: the key a read continues from, and the partition it reads."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pynamodb.attributes import Attribute
from pynamodb.expressions.condition import Condition

Key = dict[str, Any]  # DynamoDB attribute-value form: {"tenant_id": {"S": "…"}, …}
PAGE_SIZE = 500


@dataclass(frozen=True)
class Partition:
    """Where a query reads: the hash keys every item it reads has (attribute: value), and the
    range keys. A key to continue from holds exactly these attributes, with these hash values."""

    hash_keys: Mapping[str, str]
    range_keys: frozenset[str]


def page_size(limit: int | None, filtered: bool) -> int:
    """Items one DynamoDB request asks for: a filter may drop most of them, so a filtered read
    asks for full pages, and an unfiltered one for no more than it returns."""
    return PAGE_SIZE if filtered or limit is None else min(limit, PAGE_SIZE)


def time_range(key: Attribute[str], since: str | None, until: str | None) -> Condition | None:
    """A range of ``time#id`` keys: from ``since`` (inclusive) to ``until`` (exclusive)."""
    if since and until:
        return key.between(since, until)  # keys are "time#id": one at `until` sorts after it
    if since:
        return key >= since
    if until:
        return key < until
    return None
