"""The cost of a tenant's clock hour: PriceGraphData points, one per account, from the fleet
(Ec2Instances, Ec2Events) and the on-demand prices (the Redis price cache).

Idempotent: a point's key is the hour and the account, and recomputing writes the same values
over it. A running instance kopter has no price for is reported in the point
(``missing_prices``) and raises one notification a day per product, never a silent zero. Spot
instances are not priced at on-demand rates: they are reported the same way.

A cost jump, the hour's total more than ``KOPTER_COST_JUMP_FACTOR`` times the average of the same
hour on the days before (and at least ``KOPTER_COST_JUMP_MIN_USD`` more), raises a notification
naming the instances that started or were resized in the day before and are running now, each
with the principal who did it when CloudTrail saw it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from kopter import accounts, times
from kopter.costs.usage import Change, Known, Usage, price_key, usage
from kopter.notifications import Notice
from kopter.pricing.catalog import PriceKey
from kopter.settings import Settings
from kopter.tables import Ec2Event, Ec2Instance, PriceGraphPoint

POINT_DAYS = 400
CENT = Decimal("0.01")

# region, price keys -> {price key: hourly USD or None}
PriceLookup = Callable[[str, Sequence[str]], dict[str, Decimal | None]]


@dataclass
class Running:
    """An instance's usage in the hour, priced."""

    account_id: str
    region: str
    instance_id: str
    key: PriceKey
    lifecycle: str
    usage: Usage
    hourly_usd: Decimal | None = None

    @property
    def cost(self) -> Decimal:
        if self.hourly_usd is None:
            return Decimal(0)
        return self.hourly_usd * self.usage.billed_seconds / 3600


@dataclass
class HourCost:
    tenant_id: str
    hour: datetime
    points: list[PriceGraphPoint] = field(default_factory=list)
    running: list[Running] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)

    @property
    def total(self) -> Decimal:
        return sum((p.cost_usd for p in self.points), Decimal(0))

    def summary(self) -> dict[str, Any]:
        return {
            "tenant_id": self.tenant_id,
            "hour": self.hour.isoformat(),
            "cost_usd": str(self.total.quantize(CENT)),
            "accounts": len(self.points),
            "running_instances": sum(p.running_instances for p in self.points),
            "missing_prices": sum(len(p.missing_prices or []) for p in self.points),
            "notices": [n.kind for n in self.notices],
        }


def hour_start(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def aggregate_hour(
    tenant_id: str, hour: datetime, prices: PriceLookup, settings: Settings
) -> HourCost:
    """Compute and store the tenant's points for ``hour``; return them and the notices to raise."""
    hour = hour_start(hour)
    result = HourCost(tenant_id, hour)
    computed_at = datetime.now(UTC)
    since = _events_since(tenant_id, hour)
    for account in accounts.list_accounts(tenant_id):
        running = _running(
            tenant_id, account.account_id, hour, since.get(account.account_id, []), account.regions
        )
        _price(running, prices)
        point = _point(tenant_id, account.account_id, hour, running, computed_at)
        point.save()
        result.points.append(point)
        result.running.extend(running)
    result.notices.extend(_missing_price_notices(tenant_id, hour, result.running))
    jump = _cost_jump(tenant_id, hour, result, settings)
    if jump is not None:
        result.notices.append(jump)
    return result


def _events_since(tenant_id: str, hour: datetime) -> dict[str, list[Ec2Event]]:
    """The tenant's events from the hour on, by account: one query of the tenant's partition
    (the state at the hour's start is read back from them)."""
    by_account: dict[str, list[Ec2Event]] = defaultdict(list)
    for event in Ec2Event.query(tenant_id, Ec2Event.event_key >= Ec2Event.time_key(hour)):
        by_account[event.account_id].append(event)
    return by_account


def _running(
    tenant_id: str, account_id: str, hour: datetime, since: list[Ec2Event], regions: list[str]
) -> list[Running]:
    changes: dict[str, list[Change]] = defaultdict(list)
    launched_as: dict[str, str] = {}
    where: dict[str, str] = {}
    for event in since:
        changes[event.instance_id].append(Change(event.occurred_at, event.kind, event.detail))
        where[event.instance_id] = event.region
        if event.kind == "launched" and event.detail:
            launched_as[event.instance_id] = event.detail.get("instance_type") or ""
    running: list[Running] = []
    seen: set[str] = set()
    for row in Ec2Instance.query(Ec2Instance.account_key(tenant_id, account_id)):
        seen.add(row.instance_id)
        if row.region not in regions:
            continue  # a region removed from the account: no longer described, not costed
        if row.first_seen_at >= hour + timedelta(hours=1) and not changes[row.instance_id]:
            continue  # first seen after the hour, and nothing says it ran in it
        known = Known(row.state, row.instance_type, row.launch_time, row.state_changed_at)
        os = price_key(row.instance_type, row.platform, row.tenancy).operating_system
        for used in usage(row.instance_id, known, _sorted(changes[row.instance_id]), hour, os):
            key = price_key(used.instance_type, row.platform, row.tenancy)
            running.append(
                Running(account_id, row.region, row.instance_id, key, row.lifecycle, used)
            )
    # Instances the describer never saw (launched and gone between two runs): CloudTrail's
    # events say when they ran and as what type; their platform is unknown, taken as Linux.
    for instance_id, instance_changes in changes.items():
        if instance_id in seen or where[instance_id] not in regions:
            continue
        for used in usage(
            instance_id,
            None,
            _sorted(instance_changes),
            hour,
            "Linux",
            launched_as.get(instance_id),
        ):
            key = price_key(used.instance_type, None, None)
            running.append(
                Running(account_id, where[instance_id], instance_id, key, "on-demand", used)
            )
    return running


def _sorted(changes: list[Change]) -> list[Change]:
    return sorted(changes, key=lambda c: c.at)


def _price(running: Iterable[Running], prices: PriceLookup) -> None:
    by_region: dict[str, list[Running]] = defaultdict(list)
    for r in running:
        if r.lifecycle == "on-demand":
            by_region[r.region].append(r)
    for region, rs in by_region.items():
        found = prices(region, sorted({str(r.key) for r in rs}))
        for r in rs:
            r.hourly_usd = found.get(str(r.key))


def _point(
    tenant_id: str, account_id: str, hour: datetime, running: list[Running], computed_at: datetime
) -> PriceGraphPoint:
    by_region: dict[str, Decimal] = defaultdict(Decimal)
    by_type: dict[str, Decimal] = defaultdict(Decimal)
    missing: dict[tuple[str, str, str, str], int] = defaultdict(int)
    for r in running:
        by_region[r.region] += r.cost
        by_type[r.key.instance_type] += r.cost
        if r.hourly_usd is None:
            reason = "spot" if r.lifecycle == "spot" else "no price"
            missing[(r.region, r.key.instance_type, str(r.key), reason)] += 1
    return PriceGraphPoint(
        tenant_id,
        PriceGraphPoint.sort_key(hour, account_id),
        hour=hour,
        account_id=account_id,
        cost_usd=sum((r.cost for r in running), Decimal(0)),
        by_region={k: str(v) for k, v in sorted(by_region.items())},
        by_instance_type={k: str(v) for k, v in sorted(by_type.items())},
        running_instances=len({r.instance_id for r in running}),
        missing_prices=[
            {"region": region, "instance_type": itype, "product": key, "reason": why, "count": n}
            for (region, itype, key, why), n in sorted(missing.items())
        ]
        or None,
        computed_at=computed_at,
        expires_at=hour + timedelta(days=POINT_DAYS),
    )


def _missing_price_notices(tenant_id: str, hour: datetime, running: list[Running]) -> list[Notice]:
    # One a day per product, however many hours.
    day = times.stamp(hour.replace(hour=0, minute=0, second=0))
    # Spot instances are reported in the point only: their price is not a list price.
    missing = sorted(
        {(r.region, str(r.key)) for r in running if r.hourly_usd is None and r.lifecycle != "spot"}
    )
    return [
        Notice(
            tenant_id=tenant_id,
            kind="price-missing",
            subject=f"price:{region}:{key}",
            occurred_at=day,
            severity="warning",
            title=f"No price for {key.split('#')[0]} in {region}",
            body=(
                f"Instances running as {key.replace('#', ', ')} in {region} are not in the cost "
                "graph: kopter has no on-demand price for them (a spot instance, or a product "
                "the price list does not have yet). The cost points list them as missing."
            ),
            links={"region": region},
        )
        for region, key in missing
    ]


def _cost_jump(
    tenant_id: str, hour: datetime, result: HourCost, settings: Settings
) -> Notice | None:
    history = []
    for days in range(1, settings.cost_jump_days + 1):
        earlier = hour - timedelta(days=days)
        points = list(
            PriceGraphPoint.query(
                tenant_id,
                PriceGraphPoint.hour_account.startswith(PriceGraphPoint.sort_key(earlier, "")),
            )
        )
        if points:
            history.append(sum((p.cost_usd for p in points), Decimal(0)))
    if not history:
        return None
    average = sum(history, Decimal(0)) / len(history)
    total = result.total
    if total <= average * settings.cost_jump_factor or total - average < settings.cost_jump_min_usd:
        return None
    culprits = _culprits(tenant_id, hour, result.running)
    named = "; ".join(
        f"{c['instance_id']} ({c['instance_type']}, {c['region']}, {c['event']} "
        f"{c['at']}" + (f" by {c['principal']})" if c["principal"] else ")")
        for c in culprits[:10]
    )
    return Notice(
        tenant_id=tenant_id,
        kind="cost-jump",
        subject=f"hour:{hour:%Y-%m-%dT%H}",
        occurred_at=times.stamp(hour),
        severity="warning",
        title=(
            f"EC2 cost {total.quantize(CENT)} USD at {hour:%H}:00 UTC, "
            f"{(total / average).quantize(Decimal('0.1')) if average else 'far'}x the usual "
            f"{average.quantize(CENT)} USD"
        ),
        body=(
            f"Started or resized in the day before and running now: {named}."
            if named
            else "No instance started or was resized in the day before: usage grew."
        ),
        links={"hour": hour.isoformat()},
    )


def _culprits(tenant_id: str, hour: datetime, running: list[Running]) -> list[dict[str, Any]]:
    """Running instances that were launched, started or resized in the 24 hours to the hour's
    end, costliest first, with who did it where CloudTrail saw it."""
    costs = {r.instance_id: r for r in running if r.usage.seconds}
    since = hour + timedelta(hours=1) - timedelta(days=1)
    found: dict[str, dict[str, Any]] = {}
    for event in Ec2Event.query(
        tenant_id,
        Ec2Event.event_key.between(
            Ec2Event.time_key(since), Ec2Event.time_key(hour + timedelta(hours=1))
        ),
    ):
        r = costs.get(event.instance_id)
        if r is None or event.kind not in ("launched", "started", "resized"):
            continue
        previous = found.get(event.instance_id)
        if previous is None or (event.principal_arn and not previous["principal"]):
            found[event.instance_id] = {
                "instance_id": event.instance_id,
                "instance_type": r.key.instance_type,
                "region": r.region,
                "event": event.kind,
                "at": event.occurred_at.strftime("%Y-%m-%d %H:%M"),
                "principal": event.principal_arn,
                "cost": r.cost,
            }
    return sorted(found.values(), key=lambda c: c["cost"], reverse=True)
