"""Create every queue and table kopter needs, idempotently: a second run changes nothing."""

from __future__ import annotations

from typing import Any

from pynamodb.models import Model

from kopter import aws, queues, rawqueue
from kopter.queues import Change
from kopter.settings import Settings
from kopter.tables import ALL_MODELS, bound


def bootstrap(settings: Settings) -> list[Change]:
    bound(settings)  # the tables are made where the process bound them: that must be here
    # The raw queue's policy comes last: it is made from the accounts table.
    changes = queues.ensure_queues(settings) + ensure_tables(settings)
    return [*changes, rawqueue.ensure_policy(settings)]


def ensure_tables(settings: Settings) -> list[Change]:
    dynamodb = aws.client("dynamodb", settings)
    return [_ensure_table(dynamodb, model) for model in ALL_MODELS]


def _ensure_table(dynamodb: Any, model: type[Model]) -> Change:
    name = model.Meta.table_name
    if not model.exists():
        model.create_table(wait=True)
        return Change("table", name, "created")
    schema = model._get_schema()
    wanted = {i["index_name"]: i for i in schema["global_secondary_indexes"]}
    table = dynamodb.describe_table(TableName=name)["Table"]
    present = {i["IndexName"] for i in table.get("GlobalSecondaryIndexes", [])}
    added = []
    for index_name in sorted(set(wanted) - present):
        _add_index(dynamodb, name, schema, wanted[index_name])
        added.append(index_name)
    ttl_changed = _ensure_ttl(dynamodb, model)
    if not added and not ttl_changed:
        return Change("table", name, "unchanged")
    detail = ", ".join([f"index {i} added" for i in added] + (["TTL enabled"] * ttl_changed))
    return Change("table", name, "updated", detail)


def _add_index(dynamodb: Any, table: str, schema: Any, index: Any) -> None:
    names = {k["AttributeName"] for k in index["key_schema"]}
    dynamodb.update_table(
        TableName=table,
        AttributeDefinitions=[
            d for d in schema["attribute_definitions"] if d["AttributeName"] in names
        ],
        GlobalSecondaryIndexUpdates=[
            {
                "Create": {
                    "IndexName": index["index_name"],
                    "KeySchema": index["key_schema"],
                    "Projection": index["projection"],
                }
            }
        ],
    )


def _ensure_ttl(dynamodb: Any, model: type[Model]) -> bool:
    ttl = model._ttl_attribute()
    if ttl is None:
        return False
    status = dynamodb.describe_time_to_live(TableName=model.Meta.table_name)
    description = status["TimeToLiveDescription"]
    if description.get("TimeToLiveStatus") in ("ENABLED", "ENABLING") and (
        description.get("AttributeName") == ttl.attr_name
    ):
        return False
    model.update_ttl(ignore_update_ttl_errors=False)
    return True
