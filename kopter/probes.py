"""What `kopter accounts check` tries in a customer's account: each permission of the role
(``kopter.iam.customer.PERMISSIONS``, by its Sid) exercised the way kopter uses it, harmlessly.

Snapshot rights are tried with EC2's DryRun, which answers whether the call would be allowed
without making it; the creation carries kopter's tags, so the tag conditions are what is tried.
A permission that cannot be tried yet (no volume, no snapshot of kopter's, no log file) is
reported as such, not as a failure. One failing permission does not stop the others.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from kopter.cloudtrail.objects import logs_root
from kopter.ec2.backup import MANAGED, TENANT
from kopter.errors import aws_error
from kopter.tables import AwsAccount

DRY_RUN_ALLOWED = "DryRunOperation"


@dataclass(frozen=True)
class Outcome:
    name: str
    ok: bool
    detail: str


def _try(name: str, probe: Callable[[], str]) -> Outcome:
    try:
        return Outcome(name, True, probe())
    except (ClientError, BotoCoreError) as e:
        return Outcome(name, False, aws_error(e))


def _dry_run(call: Callable[..., Any], **params: Any) -> str:
    try:
        call(DryRun=True, **params)
    except ClientError as e:
        if e.response["Error"].get("Code") == DRY_RUN_ALLOWED:
            return "allowed (dry run)"
        raise
    return "allowed"


def ec2_probes(ec2: Any, region: str, tenant_id: str) -> Iterator[Outcome]:
    volumes: list[str] = []

    def instances() -> str:
        page = ec2.describe_instances(MaxResults=5)
        found = [i for r in page["Reservations"] for i in r["Instances"]]
        for instance in found:
            volumes.extend(
                m["Ebs"]["VolumeId"]
                for m in instance.get("BlockDeviceMappings") or []
                if "Ebs" in m
            )
        return f"ok ({len(found)} seen)"

    yield _try(f"DescribeInstances:{region}", instances)
    snapshots: list[str] = []

    def describe_snapshots() -> str:
        page = ec2.describe_snapshots(
            OwnerIds=["self"],
            Filters=[
                {"Name": f"tag:{MANAGED}", "Values": ["true"]},
                {"Name": f"tag:{TENANT}", "Values": [tenant_id]},
            ],
            MaxResults=5,
        )
        snapshots.extend(s["SnapshotId"] for s in page["Snapshots"])
        return f"ok ({len(snapshots)} of kopter's seen)"

    yield _try(f"DescribeSnapshots:{region}", describe_snapshots)
    create = f"CreateKopterSnapshots:{region}"
    if volumes:
        tags = [{"Key": MANAGED, "Value": "true"}, {"Key": TENANT, "Value": tenant_id}]
        yield _try(
            create,
            lambda: _dry_run(
                ec2.create_snapshot,
                VolumeId=volumes[0],
                TagSpecifications=[{"ResourceType": "snapshot", "Tags": tags}],
            ),
        )
    else:
        yield Outcome(create, True, "not tried: no instance volume seen")
    delete = f"DeleteKopterSnapshots:{region}"
    if snapshots:
        yield _try(delete, lambda: _dry_run(ec2.delete_snapshot, SnapshotId=snapshots[0]))
    else:
        yield Outcome(delete, True, "not tried: kopter has made no snapshot here yet")


def trail_probes(s3: Any, account: AwsAccount) -> Iterator[Outcome]:
    bucket, base = account.cloudtrail_bucket, logs_root(account.cloudtrail_prefix)
    keys: list[str] = []

    def list_logs() -> str:
        # As backfill does: the layouts under the prefix, then one log of the account's.
        page = s3.list_objects_v2(Bucket=bucket, Prefix=base, Delimiter="/")
        roots = [p["Prefix"] for p in page.get("CommonPrefixes", [])]
        own = [r for r in roots if r == f"{base}{account.account_id}/"]
        if own:
            listed = s3.list_objects_v2(Bucket=bucket, Prefix=own[0], MaxKeys=1)
            keys.extend(o["Key"] for o in listed.get("Contents", []))
        return f"s3://{bucket}/{base}"

    yield _try("ListTrailLogs", list_logs)
    if keys:
        yield _try(
            "ReadTrailLogs",
            lambda: s3.head_object(Bucket=bucket, Key=keys[0]) and f"s3://{bucket}/{keys[0]}",
        )
    else:
        yield Outcome("ReadTrailLogs", True, "not tried: no log file of this account yet")
