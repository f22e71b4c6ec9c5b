"""What every model is made of: the Decimal attribute, a table's Meta (named at ``bind``), and
composite keys."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pynamodb.attributes import Attribute
from pynamodb.constants import NUMBER

from kopter.errors import KopterError


class DecimalAttribute(Attribute[Decimal]):
    """A DynamoDB number kept as Decimal: PynamoDB's NumberAttribute goes through float."""

    attr_type = NUMBER

    def serialize(self, value: Decimal) -> str:
        return str(value)

    def deserialize(self, value: str) -> Decimal:
        return Decimal(value)


class TablesNotBound(KopterError):
    """A model was used before ``bind``: the process has not said which deployment it serves."""


class _UnboundMeta(type):
    # Only reached while ``table_name`` is unset: ``bind`` sets it on the class. Not an
    # AttributeError, which PynamoDB's ``hasattr`` checks would swallow into a vaguer message.
    def __getattr__(cls, name: str) -> Any:
        if name == "table_name":
            raise TablesNotBound(
                f"table {cls.base_name!r} used before kopter.tables.bind(settings) was called"
            )
        raise AttributeError(name)


def meta(table: str) -> Any:
    class Meta(metaclass=_UnboundMeta):
        base_name = table
        billing_mode = "PAY_PER_REQUEST"
        max_retry_attempts = 8  # throttling: PynamoDB backs off between attempts

    return Meta


def index_meta(name: str, projection: Any) -> Any:
    class Meta:
        index_name = name
        billing_mode = "PAY_PER_REQUEST"

    Meta.projection = projection  # type: ignore[attr-defined]
    return Meta


def composite_key(*parts: str) -> str:
    """A composite key: its parts joined by ``#``, the tenant first where it has one. Every
    composite key is made by a model's method (``Ec2Event.account_key``), none elsewhere."""
    return "#".join(parts)


class TenantAccountKeyed:
    """A model keyed or indexed by ``<tenant>#<account>``."""

    @staticmethod
    def account_key(tenant_id: str, account_id: str) -> str:
        return composite_key(tenant_id, account_id)
