"""Each table as DynamoDB describes it, read from its PynamoDB model: keys, attributes, indexes,
TTL, billing mode and point-in-time recovery. `kopter bootstrap` makes the tables from these,
`kopter deploy template` writes them into CloudFormation: one definition, so the two cannot
drift."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pynamodb.models import Model

from kopter.tables import ALL_MODELS, base_name

# Every table can be restored to any second of the last 35 days: the audit log, accounts and
# tenants are customers' data no process could make again.
POINT_IN_TIME_RECOVERY = True


@dataclass(frozen=True)
class Index:
    name: str
    key_schema: list[dict[str, str]]
    projection: dict[str, Any]


@dataclass(frozen=True)
class TableDefinition:
    base_name: str
    key_schema: list[dict[str, str]]
    attribute_definitions: list[dict[str, str]]
    indexes: list[Index]
    ttl_attribute: str | None
    billing_mode: str
    point_in_time_recovery: bool = POINT_IN_TIME_RECOVERY


def _keys(schema: Iterable[Mapping[str, Any]]) -> list[dict[str, str]]:
    # DynamoDB wants the hash key first; PynamoDB lists them in attribute order.
    return sorted(
        ({"AttributeName": k["AttributeName"], "KeyType": k["KeyType"]} for k in schema),
        key=lambda k: k["KeyType"] != "HASH",
    )


def definition(model: type[Model]) -> TableDefinition:
    schema = model._get_schema()
    ttl = model._ttl_attribute()
    return TableDefinition(
        base_name=base_name(model),
        key_schema=_keys(schema["key_schema"]),
        attribute_definitions=sorted(
            (
                {"AttributeName": a["AttributeName"], "AttributeType": a["AttributeType"]}
                for a in schema["attribute_definitions"]
            ),
            key=lambda a: a["AttributeName"],
        ),
        indexes=[
            Index(i["index_name"], _keys(i["key_schema"]), i["projection"])
            for i in schema["global_secondary_indexes"]
        ],
        ttl_attribute=ttl.attr_name if ttl else None,
        billing_mode=model.Meta.billing_mode or "PROVISIONED",
    )


def definitions() -> list[TableDefinition]:
    return [definition(model) for model in ALL_MODELS]
