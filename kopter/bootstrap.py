"""Create every queue and table kopter needs, idempotently: a second run changes nothing."""

from __future__ import annotations

from typing import Any

from pynamodb.models import Model

from kopter import aws, queues, rawqueue
from kopter.queues import Change
from kopter.settings import Settings
from kopter.tables import ALL_MODELS, bound
from kopter.tables.definitions import Index, TableDefinition, definition


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
    wanted = definition(model)
    created = not model.exists()
    if created:
        model.create_table(wait=True)
    table = dynamodb.describe_table(TableName=name)["Table"]
    present = {i["IndexName"] for i in table.get("GlobalSecondaryIndexes", [])}
    schema = model._get_schema()
    done = []
    for index in wanted.indexes:
        if index.name not in present:
            _add_index(dynamodb, name, schema, index)
            done.append(f"index {index.name} added")
    if _ensure_ttl(dynamodb, model, wanted):
        done.append("TTL enabled")
    if _ensure_point_in_time_recovery(dynamodb, name, wanted):
        done.append("point-in-time recovery enabled")
    if created:
        return Change("table", name, "created")
    if not done:
        return Change("table", name, "unchanged")
    return Change("table", name, "updated", ", ".join(done))


def _add_index(dynamodb: Any, table: str, schema: Any, index: Index) -> None:
    names = {k["AttributeName"] for k in index.key_schema}
    dynamodb.update_table(
        TableName=table,
        AttributeDefinitions=[
            d for d in schema["attribute_definitions"] if d["AttributeName"] in names
        ],
        GlobalSecondaryIndexUpdates=[
            {
                "Create": {
                    "IndexName": index.name,
                    "KeySchema": index.key_schema,
                    "Projection": index.projection,
                }
            }
        ],
    )


def _ensure_ttl(dynamodb: Any, model: type[Model], wanted: TableDefinition) -> bool:
    if wanted.ttl_attribute is None:
        return False
    status = dynamodb.describe_time_to_live(TableName=model.Meta.table_name)
    description = status["TimeToLiveDescription"]
    if description.get("TimeToLiveStatus") in ("ENABLED", "ENABLING") and (
        description.get("AttributeName") == wanted.ttl_attribute
    ):
        return False
    model.update_ttl(ignore_update_ttl_errors=False)
    return True


def _ensure_point_in_time_recovery(dynamodb: Any, table: str, wanted: TableDefinition) -> bool:
    if not wanted.point_in_time_recovery:
        return False
    backups = dynamodb.describe_continuous_backups(TableName=table)["ContinuousBackupsDescription"]
    status = backups.get("PointInTimeRecoveryDescription", {}).get("PointInTimeRecoveryStatus")
    if status == "ENABLED":
        return False
    dynamodb.update_continuous_backups(
        TableName=table,
        PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
    )
    return True
