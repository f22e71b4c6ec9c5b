"""EC2 prices, and the hourly cost graph they make."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pynamodb.attributes import (
    BooleanAttribute,
    JSONAttribute,
    ListAttribute,
    MapAttribute,
    NumberAttribute,
    TTLAttribute,
    UnicodeAttribute,
    UTCDateTimeAttribute,
)
from pynamodb.models import Model

from kopter.tables.base import DecimalAttribute, composite_key, meta


class ReservedPrice(MapAttribute[str, Any]):
    lease_length = UnicodeAttribute()  # "1yr", "3yr"
    offering_class = UnicodeAttribute()  # "standard", "convertible"
    purchase_option = UnicodeAttribute()  # "No Upfront", "Partial Upfront", "All Upfront"
    upfront_usd = DecimalAttribute()
    hourly_usd = DecimalAttribute()


class Ec2Price(Model):
    """On-demand and reserved prices of one product in one region. Not tenant-owned."""

    Meta = meta("Ec2Prices")
    region = UnicodeAttribute(hash_key=True)
    # "<instanceType>#<operatingSystem>#<tenancy>#<licenseModel>#<preInstalledSw>"
    price_key = UnicodeAttribute(range_key=True)
    instance_type = UnicodeAttribute()
    operating_system = UnicodeAttribute()
    tenancy = UnicodeAttribute()
    license_model = UnicodeAttribute()
    pre_installed_sw = UnicodeAttribute()
    sku = UnicodeAttribute()
    on_demand_hourly_usd = DecimalAttribute(null=True)
    reserved = ListAttribute(of=ReservedPrice, default=list)
    offer_version = UnicodeAttribute()
    gone = BooleanAttribute(default=False)  # the product left the price list
    digest = UnicodeAttribute(null=True)  # of what the file said: a new one means a change
    updated_at = UTCDateTimeAttribute()

    @staticmethod
    def type_prefix(instance_type: str) -> str:
        return composite_key(instance_type, "")


class PriceGraphPoint(Model):
    """The cost of one account's hour, with its breakdown. A tenant's series is a range query
    on ``hour_account``; recomputing an hour overwrites the same items."""

    Meta = meta("PriceGraphData")
    tenant_id = UnicodeAttribute(hash_key=True)
    hour_account = UnicodeAttribute(range_key=True)  # "<YYYY-MM-DDTHH>#<account>"
    hour = UTCDateTimeAttribute()
    account_id = UnicodeAttribute()
    cost_usd = DecimalAttribute()
    by_region = JSONAttribute(default=dict)  # {"us-east-1": "1.23"}: Decimal as strings
    by_instance_type = JSONAttribute(default=dict)
    running_instances = NumberAttribute(default=0)
    missing_prices = JSONAttribute(null=True)  # [{"region": …, "instance_type": …, "count": …}]
    computed_at = UTCDateTimeAttribute()
    expires_at = TTLAttribute(null=True)

    @classmethod
    def sort_key(cls, hour: datetime, account_id: str) -> str:
        return composite_key(cls.hour_key(hour), account_id)

    @staticmethod
    def hour_key(hour: datetime) -> str:
        """The hour a point's key starts with: a bound of a range of them."""
        return f"{hour:%Y-%m-%dT%H}"
