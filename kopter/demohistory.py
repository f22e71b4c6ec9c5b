"""The demo's past in kopter's tables: what its describer recorded at each hour of the story, and
what those hours cost. `kopter dev` writes it once the story's log files are ingested and the
price list imported, before the describer first reads the fleet from moto.

Written by hand: the describer's runs of past hours (``describer.record`` with the instance
states the story gives each server at that hour: moto can only say what the fleet is now, and
dates every launch now). Everything else is kopter's own code: the events those runs and
CloudTrail's records make (joined, with who made each change), the aggregator's points for every
past hour, oldest first (a cost jump is judged against the days before), and its notifications.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from pynamodb.exceptions import DoesNotExist

from kopter import cache, demo
from kopter.costs.aggregator import aggregate_hour
from kopter.ec2 import describer
from kopter.ec2.instances import InstanceState
from kopter.errors import KopterError
from kopter.notifications import Notice, deliver
from kopter.pricing.cache import PriceCache
from kopter.settings import Settings
from kopter.tables import GlobalItem

# Described and costed: the last day, and the hours before it that the story's cost jump (six
# hours ago) is measured against, the same hour the day before.
HOURS = 30


def pending(keys: list[str]) -> list[str]:
    """The log files of ``keys`` not ingested yet; a KopterError if one was refused."""
    left = []
    for key in keys:
        source = f"s3://{demo.BUCKET}/{key}"
        if _marker(GlobalItem.ingested_key(source)) is not None:
            continue
        refused = _marker(GlobalItem.refused_key(source))
        if refused is not None:
            raise KopterError(f"the demo's {source} was refused: {refused.get('reason')}")
        left.append(key)
    return left


def _marker(key: str) -> dict | None:
    try:
        return dict(GlobalItem.get(key, consistent_read=True).value or {})
    except DoesNotExist:
        return None


def backdate_fleet(tenant_id: str, trail: demo.DemoTrail, settings: Settings) -> int:
    """The describer's hourly runs over the last HOURS, each given the fleet as the story had
    it then (moto's servers with the story's state, type and times); how many runs changed it."""
    previous: dict[str, list[InstanceState]] = {}
    changed = 0
    for hours in range(HOURS, 0, -1):
        run_at = trail.start_hour - timedelta(hours=hours)
        fleet: dict[str, list[InstanceState]] = defaultdict(list)
        for name, now in trail.fleet.items():
            life = demo.life_at(name, run_at, trail.start_hour)
            if life is not None:
                fleet[now.region].append(
                    dataclasses.replace(
                        now,
                        state=life.state,
                        instance_type=life.instance_type,
                        launch_time=life.started,
                        transition_time=life.stopped,
                    )
                )
        for region, states in fleet.items():
            if states != previous.get(region):
                run = describer.record(tenant_id, demo.ACCOUNT, region, states, run_at, settings)
                changed += bool(run.changes)
        previous = fleet
    return changed


@dataclass(frozen=True)
class CostedHistory:
    hours: int
    cost_usd: Decimal
    notices: list[Notice]


def cost_history(tenant_id: str, trail: demo.DemoTrail, settings: Settings) -> CostedHistory:
    """The aggregator over the last HOURS, oldest first, its notices delivered as its task's."""
    prices = PriceCache(cache.client(settings), settings.prefix).on_demand
    total, notices = Decimal(0), []
    for hours in range(HOURS, 0, -1):
        hour = trail.start_hour - timedelta(hours=hours)
        result = aggregate_hour(tenant_id, hour, prices, settings)
        total += result.total
        for notice in result.notices:
            deliver(notice, settings)
        notices += result.notices
    return CostedHistory(HOURS, total, notices)
