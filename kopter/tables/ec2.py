"""EC2 fleets: instances as last described, what changed, the snapshots kopter took."""

from __future__ import annotations

from datetime import datetime

from pynamodb.attributes import (
    JSONAttribute,
    ListAttribute,
    TTLAttribute,
    UnicodeAttribute,
    UnicodeSetAttribute,
    UTCDateTimeAttribute,
)
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model

from kopter.tables.base import TenantAccountKeyed, composite_key, index_meta, meta


class Ec2Instance(TenantAccountKeyed, Model):
    """The last described state of one instance. The describer reads one (account, region) at
    a time: hash ``<tenant>#<account>``, range prefix ``<region>#``."""

    Meta = meta("Ec2Instances")
    tenant_account = UnicodeAttribute(hash_key=True)
    region_instance = UnicodeAttribute(range_key=True)  # "<region>#<instance id>"
    tenant_id = UnicodeAttribute()
    account_id = UnicodeAttribute()
    region = UnicodeAttribute()
    instance_id = UnicodeAttribute()
    state = UnicodeAttribute()
    instance_type = UnicodeAttribute()
    platform = UnicodeAttribute(null=True)  # PlatformDetails, e.g. "Linux/UNIX"
    tenancy = UnicodeAttribute(null=True)
    lifecycle = UnicodeAttribute(default="on-demand")
    availability_zone = UnicodeAttribute(null=True)
    launch_time = UTCDateTimeAttribute(null=True)
    tags = JSONAttribute(default=dict)
    volume_ids = ListAttribute[str](of=UnicodeAttribute, default=list)  # type: ignore[arg-type]
    first_seen_at = UTCDateTimeAttribute()
    last_seen_at = UTCDateTimeAttribute()
    state_changed_at = UTCDateTimeAttribute(null=True)
    expires_at = TTLAttribute(null=True)  # set once terminated

    @staticmethod
    def instance_key(region: str, instance_id: str) -> str:
        return composite_key(region, instance_id)

    @staticmethod
    def region_prefix(region: str) -> str:
        return composite_key(region, "")


class Ec2EventsByAccount(GlobalSecondaryIndex["Ec2Event"]):
    """`kopter events --account A`."""

    Meta = index_meta("by-account", AllProjection())
    tenant_account = UnicodeAttribute(hash_key=True)
    event_key = UnicodeAttribute(range_key=True)


class Ec2EventsByInstance(GlobalSecondaryIndex["Ec2Event"]):
    """An instance's history: who launched or resized it, for the aggregator's cost jumps."""

    Meta = index_meta("by-instance", AllProjection())
    tenant_instance = UnicodeAttribute(hash_key=True)
    event_key = UnicodeAttribute(range_key=True)


class Ec2Event(TenantAccountKeyed, Model):
    """A change to an instance (launched, started, stopped, terminated, resized, retagged),
    from a describer diff or a CloudTrail record; one item however many sources saw it."""

    Meta = meta("Ec2Events")
    tenant_id = UnicodeAttribute(hash_key=True)
    event_key = UnicodeAttribute(range_key=True)  # "<time ISO>#<deterministic id>"
    tenant_account = UnicodeAttribute()
    tenant_instance = UnicodeAttribute()
    account_id = UnicodeAttribute()
    region = UnicodeAttribute()
    instance_id = UnicodeAttribute()
    kind = UnicodeAttribute()
    occurred_at = UTCDateTimeAttribute()
    detail = JSONAttribute(null=True)  # e.g. {"from": "t3.micro", "to": "m5.large"}
    principal_arn = UnicodeAttribute(null=True)
    sources = UnicodeSetAttribute(default=set)  # "describer", "cloudtrail": who saw it
    expires_at = TTLAttribute(null=True)

    by_account = Ec2EventsByAccount()
    by_instance = Ec2EventsByInstance()

    @staticmethod
    def time_key(moment: datetime) -> str:
        """The minute an event key starts with: a bound of a range of them."""
        return f"{moment:%Y-%m-%dT%H:%M}Z"

    @classmethod
    def sort_key(cls, moment: datetime, event_id: str) -> str:
        return composite_key(cls.time_key(moment), event_id)

    @staticmethod
    def instance_key(tenant_id: str, instance_id: str) -> str:
        return composite_key(tenant_id, instance_id)


class Ec2Snapshot(TenantAccountKeyed, Model):
    """A snapshot kopter took. The range key names the volume and the 12-hour window, so a run
    repeated after a crash finds its claim instead of snapshotting the volume again. Expiry is
    kopter's (``expires_on``, from the snapshot's own tags), not a TTL: the EBS snapshot is
    deleted first; the TTL only drops the item's history a month after."""

    Meta = meta("Ec2Snapshots")
    tenant_account = UnicodeAttribute(hash_key=True)
    volume_window = UnicodeAttribute(range_key=True)  # "<region>#<volume id>#<window start>"
    tenant_id = UnicodeAttribute()
    account_id = UnicodeAttribute()
    region = UnicodeAttribute()
    volume_id = UnicodeAttribute()
    instance_id = UnicodeAttribute()
    snapshot_id = UnicodeAttribute(null=True)  # null between the claim and CreateSnapshot
    state = UnicodeAttribute()  # claimed, pending, completed, failed, deleted
    created_at = UTCDateTimeAttribute()  # when the claim was taken (a takeover renews it)
    expires_on = UTCDateTimeAttribute()
    failure = UnicodeAttribute(null=True)
    expires_at = TTLAttribute(null=True)  # a month after expires_on

    @property
    def window(self) -> str:
        return self.volume_window.rsplit("#", 1)[1]

    @staticmethod
    def volume_key(region: str, volume_id: str, window: str) -> str:
        return composite_key(region, volume_id, window)

    @staticmethod
    def region_prefix(region: str) -> str:
        return composite_key(region, "")
