"""moto's server for `benchmarks.describer`, with a table's Query reading only its partition.

Stock moto answers a Query on a table by sorting every item of the table, through DynamoType
comparisons that cast each value, and keeping those of the asked hash key: about a second a
Query once Ec2Instances holds 20,000 rows, against the one partition DynamoDB reads. Here a
Query on a table (not an index) hands moto's own code that partition's items alone, so the
answer is the same, item for item and in order, whatever was written before; everything else is
moto's. The describer's Query per (account, region) would otherwise be most of the run.

    python -m benchmarks.partitionmoto -H 127.0.0.1 -p PORT
"""

from __future__ import annotations

import threading
from typing import Any

from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Table

from kopter.motoserver import main

_query, _all_items = Table.query, Table.all_items
_asked = threading.local()  # the (table, hash key) of the Query this request thread answers


def query(
    self: Table,
    hash_key: DynamoType | None,
    range_comparison: str | None,
    range_objs: list[DynamoType],
    limit: int,
    exclusive_start_key: dict[str, Any],
    scan_index_forward: bool,
    projection_expressions: list[list[str]] | None,
    index_name: str | None = None,
    *args: Any,
    **kwargs: Any,
) -> Any:
    if index_name is None and hash_key is not None:
        _asked.partition = (self, hash_key)
    try:
        return _query(
            self,
            hash_key,
            range_comparison,
            range_objs,
            limit,
            exclusive_start_key,
            scan_index_forward,
            projection_expressions,
            index_name,
            *args,
            **kwargs,
        )
    finally:
        _asked.partition = None


def all_items(self: Table) -> list[Any]:
    asked = getattr(_asked, "partition", None)
    if asked is None or asked[0] is not self:
        return _all_items(self)
    # moto keeps items by hash key: that key's items are all the base-table Query keeps, and it
    # sorts them by range key itself.
    items = self.items.get(asked[1])
    if items is None:
        return []
    return list(items.values()) if self.range_key_attr else [items]


Table.query = query  # type: ignore[method-assign]
Table.all_items = all_items  # type: ignore[method-assign]

if __name__ == "__main__":
    main()
