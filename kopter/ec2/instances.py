"""An EC2 instance as kopter keeps it, read from a DescribeInstances response."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

# "User initiated (2025-03-06 14:33:58 GMT)": when EC2 stopped or terminated the instance
# (moto writes UTC where EC2 writes GMT).
_TRANSITION_TIME = re.compile(r"\((\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}) (?:GMT|UTC)\)")


@dataclass(frozen=True)
class InstanceState:
    instance_id: str
    region: str
    state: str
    instance_type: str
    platform: str | None
    tenancy: str | None
    lifecycle: str  # on-demand, spot, scheduled, capacity-block
    availability_zone: str | None
    launch_time: datetime | None
    transition_time: datetime | None  # when it last stopped or terminated, if EC2 says
    tags: dict[str, str] = field(default_factory=dict)
    volume_ids: tuple[str, ...] = ()

    @classmethod
    def from_api(cls, instance: dict[str, Any], region: str) -> InstanceState:
        placement = instance.get("Placement") or {}
        match = _TRANSITION_TIME.search(instance.get("StateTransitionReason") or "")
        return cls(
            instance_id=instance["InstanceId"],
            region=region,
            state=instance["State"]["Name"],
            instance_type=instance["InstanceType"],
            platform=instance.get("PlatformDetails") or instance.get("Platform"),
            tenancy=placement.get("Tenancy"),
            lifecycle=instance.get("InstanceLifecycle") or "on-demand",
            availability_zone=placement.get("AvailabilityZone"),
            launch_time=_utc(instance.get("LaunchTime")),
            transition_time=(
                datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
                if match
                else None
            ),
            tags={t["Key"]: t["Value"] for t in instance.get("Tags") or []},
            volume_ids=tuple(
                m["Ebs"]["VolumeId"]
                for m in instance.get("BlockDeviceMappings") or []
                if "Ebs" in m
            ),
        )


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def describe(ec2: Any, region: str) -> list[InstanceState]:
    """Every instance of the region, all pages (terminated ones while EC2 still lists them)."""
    return [
        InstanceState.from_api(instance, region)
        for page in ec2.get_paginator("describe_instances").paginate(
            PaginationConfig={"PageSize": 1000}
        )
        for reservation in page["Reservations"]
        for instance in reservation["Instances"]
    ]
