"""kopter's DynamoDB tables, as PynamoDB models.

Confinement: every tenant-owned table (and every index on it) has the tenant id as its hash key
or as the first part of it (``<tenant>#…``), so an IAM policy with a ``dynamodb:LeadingKeys``
condition (``<tenant>`` or ``<tenant>#*``) can limit a customer's credentials to their own items.

Idempotency: SQS delivers at least once, so each item's key is derived from what it describes
(an eventID, an instance id, an hour), never from the time it was written: a redelivered message
writes the same key again instead of a second item.

Each model declares only its table's base name: ``bind(settings)``, called once at start-up by
each process that reads them (a worker, a command, the API, a test), names the tables
``KOPTER_PREFIX`` + that name in kopter's region, at ``KOPTER_AWS_ENDPOINT_URL``. A model used
before that fails with ``TablesNotBound`` rather than reach a default deployment's table.
"""

from __future__ import annotations

import os
from functools import cache

from pynamodb.connection import Connection
from pynamodb.models import Model

from kopter.settings import Settings
from kopter.tables.audit import (
    AuditDigest,
    AuditEventsByAccount,
    AuditEventsByName,
    AuditEventsByPrincipal,
    AuditLogEvent,
)
from kopter.tables.base import DecimalAttribute, TablesNotBound, TenantAccountKeyed
from kopter.tables.customers import AwsAccount, Tenant
from kopter.tables.detections import Finding, TenantRule
from kopter.tables.ec2 import (
    Ec2Event,
    Ec2EventsByAccount,
    Ec2EventsByInstance,
    Ec2Instance,
    Ec2Snapshot,
)
from kopter.tables.prices import Ec2Price, PriceGraphPoint, ReservedPrice
from kopter.tables.state import Channel, FrontendNotification, GlobalItem

__all__ = [
    "ALL_MODELS",
    "AuditDigest",
    "AuditEventsByAccount",
    "AuditEventsByName",
    "AuditEventsByPrincipal",
    "AuditLogEvent",
    "AwsAccount",
    "Channel",
    "DecimalAttribute",
    "Ec2Event",
    "Ec2EventsByAccount",
    "Ec2EventsByInstance",
    "Ec2Instance",
    "Ec2Price",
    "Ec2Snapshot",
    "Finding",
    "FrontendNotification",
    "GlobalItem",
    "PriceGraphPoint",
    "ReservedPrice",
    "TablesNotBound",
    "Tenant",
    "TenantAccountKeyed",
    "TenantRule",
    "base_name",
    "bind",
    "bound",
    "connection",
]

ALL_MODELS: tuple[type[Model], ...] = (
    Tenant,
    AwsAccount,
    AuditLogEvent,
    AuditDigest,
    Ec2Instance,
    Ec2Event,
    Ec2Price,
    PriceGraphPoint,
    Ec2Snapshot,
    FrontendNotification,
    Finding,
    TenantRule,
    Channel,
    GlobalItem,
)


_bound: Settings | None = None


def base_name(model: type[Model]) -> str:
    """The model's table name without a deployment's prefix."""
    name: str = model.Meta.base_name  # type: ignore[attr-defined]
    return name


def bind(settings: Settings) -> None:
    """Point every model at ``settings``' deployment: its prefix, region and endpoint."""
    global _bound
    for model in ALL_MODELS:
        model.Meta.table_name = settings.prefix + base_name(model)
        model.Meta.region = settings.region
        model.Meta.host = settings.aws_endpoint_url
        model._connection = None  # PynamoDB keeps a model's connection until its table changes
    connection.cache_clear()
    _bound = settings


def bound(settings: Settings | None = None) -> Settings:
    """The settings the tables are bound to; given ``settings``, those must name the same tables."""
    if _bound is None:
        raise TablesNotBound("kopter.tables.bind(settings) was not called in this process")
    same = (_bound.prefix, _bound.region, _bound.aws_endpoint_url)
    if (
        settings is not None
        and (settings.prefix, settings.region, settings.aws_endpoint_url) != same
    ):
        raise TablesNotBound(
            f"the tables are bound to prefix {_bound.prefix!r}, not {settings.prefix!r}"
        )
    return _bound


@cache
def connection() -> Connection:
    """A connection to the bound deployment's DynamoDB, for transactions across tables."""
    settings = bound()
    return Connection(region=settings.region, host=settings.aws_endpoint_url)


# A forked child must not share the parent's HTTP connections.
os.register_at_fork(after_in_child=connection.cache_clear)
