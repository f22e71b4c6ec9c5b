"""`kopter deploy cost`'s answer: the fleet, the month's lines and their total, and the same
work on Lambda, as text (what docs/deploying.md shows) or as one JSON document."""

from __future__ import annotations

import textwrap
from dataclasses import asdict, dataclass
from typing import Any

from kopter.deploy import cost, prices
from kopter.deploy.cost import Line, Service
from kopter.deploy.groups import WorkerGroup
from kopter.deploy.workload import HOURS, Work, Workload, work

WIDTH = 98


@dataclass(frozen=True)
class Estimate:
    accounts: int
    workload: Workload
    work: Work
    services: list[Service]
    lines: list[Line]
    workers: list[Line]  # the workers' part of the bill ...
    on_lambda: list[Line]  # ... and the same tasks on Lambda

    @property
    def total(self) -> float:
        return sum(line.usd for line in self.lines)


def estimate(
    doc: dict[str, Any], groups: tuple[WorkerGroup, ...], accounts: int, w: Workload
) -> Estimate:
    services, lines = cost.bill(doc, groups, accounts, w)
    done = work(accounts, w)
    workers, on_lambda = cost.lambda_lines(services, lines, done, w)
    return Estimate(accounts, w, done, services, lines, workers, on_lambda)


def text(e: Estimate) -> str:
    w = e.workload
    assumed = " ".join(f"{name}={value:g}" for name, value in vars(w).items())
    about = (
        f"us-east-1 list prices read {prices.READ} (kopter/deploy/prices.py), no free tier "
        "deducted; what each unit of work asks of AWS counted (kopter/deploy/usage.py); task "
        "times measured against moto, an upper bound. "
        f"Work: {e.work.tenants:,.0f} tenants, {e.work.regions:,.0f} account-regions, "
        f"{e.work.instances:,.0f} instances, {e.work.records / 1e6:,.1f} M CloudTrail records "
        f"in {e.work.files / 1e6:,.2f} M files, {e.work.visits:,.0f} visits of the web app. "
        f"Assumed (--assume NAME=VALUE): {assumed}"
    )
    out = [
        f"kopter's own AWS bill for {e.accounts:,} connected accounts, a month ({HOURS:g} h)",
        *textwrap.wrap(about, WIDTH, initial_indent="  ", subsequent_indent="  "),
        "",
        "fleet on ECS Fargate: the template's task sizes, workers scaled on their backlog",
        *_table(
            ["service", "vCPU", "GB", "tasks", "why"],
            [[s.name, f"{s.vcpu:g}", f"{s.memory_gb:g}", str(s.tasks), s.why] for s in e.services],
            "lrrrl",
        ),
        "",
        *_table(
            ["service", "item", "quantity", "unit price", "USD/month"],
            [*_rows(e.lines), ["total", "", "", "", f"{e.total:,.2f}"]],
            "llrrr",
        ),
        "",
        "the same tasks on Lambda, the seed's design (all else unchanged): one invocation a",
        "message, for the benchmarks' task time; Lambda's own SQS pollers are not counted",
        *_table(
            ["service", "item", "quantity", "unit price", "USD/month"],
            [
                *_rows(e.workers),
                ["", "workers", "", "", f"{sum(x.usd for x in e.workers):,.2f}"],
                *_rows(e.on_lambda),
                ["", "Lambda", "", "", f"{sum(x.usd for x in e.on_lambda):,.2f}"],
            ],
            "llrrr",
        ),
    ]
    return "\n".join(out) + "\n"


def document(e: Estimate) -> dict[str, Any]:
    def line(x: Line) -> dict[str, Any]:
        return {
            "service": x.service,
            "item": x.item,
            "quantity": x.quantity,
            "unit_price_usd": x.price.usd,
            "unit": x.price.unit,
            "usd": x.usd,
            "price_source": x.price.url,
            "price_confirmed": x.price.confirmed,
        }

    return {
        "accounts": e.accounts,
        "prices_read": prices.READ,
        "workload": asdict(e.workload),
        "work": asdict(e.work),
        "fleet": [asdict(s) for s in e.services],
        "lines": [line(x) for x in e.lines],
        "total_usd": e.total,
        "lambda": {
            "workers": [line(x) for x in e.workers],
            "workers_usd": sum(x.usd for x in e.workers),
            "lambda": [line(x) for x in e.on_lambda],
            "lambda_usd": sum(x.usd for x in e.on_lambda),
        },
    }


def _rows(lines: list[Line]) -> list[list[str]]:
    return [
        [x.service, x.item, _quantity(x.quantity), _price(x.price.usd), f"{x.usd:,.2f}"]
        for x in lines
    ]


def _price(usd: float) -> str:
    return "$" + (f"{usd:.10f}".rstrip("0") if usd < 0.001 else f"{usd:g}")


def _quantity(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:,.3g}"


def _table(head: list[str], rows: list[list[str]], align: str) -> list[str]:
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]

    def cells(row: list[str]) -> str:
        return "  ".join(
            c.rjust(wd) if a == "r" else c.ljust(wd)
            for c, wd, a in zip(row, widths, align, strict=False)
        ).rstrip()

    return ["  " + cells(head), *("  " + cells(r) for r in rows)]
