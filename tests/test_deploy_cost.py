"""`kopter deploy cost`: kopter's own monthly AWS bill for N accounts, made of the template's own
fleet and parameters, the per-unit figures of ``kopter/deploy/usage.py`` (recounted against the
code by tests/test_deploy_cost_recount.py) and cited prices; and docs/deploying.md shows what it
prints."""

from __future__ import annotations

import copy
import json
import math
import re

import pytest

from beat_schedule import beat_schedule
from kopter.cli import main
from kopter.cli.deploy import _stack
from kopter.deploy import bill, cost, prices, usage
from kopter.deploy.groups import DEFAULT_GROUPS
from kopter.deploy.scaling import tasks
from kopter.deploy.workload import HOURS, SECONDS, Workload, work
from tests.support.samples import ROOT

pytestmark = pytest.mark.unit

DOCS = ROOT / "docs" / "deploying.md"
SIZES = (100, 1_000, 5_000)


@pytest.fixture(scope="module")
def stack() -> dict:
    return _stack(())[1]


def _run(capsys, *args: str) -> tuple[int, str, str]:
    code = 0
    try:
        main(["deploy", "cost", *args])
    except SystemExit as e:
        code = int(e.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("accounts", ["0", "-3", "many", "1.5", "", None])
def test_accounts_must_be_a_whole_number_of_one_or_more(capsys, accounts):
    code, out, err = _run(capsys, *(["--accounts", accounts] if accounts is not None else []))
    assert code == 1 and not out
    assert err.count("\n") == 1 and err.startswith("kopter: error: ")
    assert "--accounts" in err and "Traceback" not in err


@pytest.mark.parametrize(
    "assume, refused",
    [
        ("nonsense=1", "NAME one of"),
        ("regions_per_account", "NAME=VALUE"),
        ("regions_per_account=four", "not a number"),
        ("tagged_share=-1", "0 or more"),
    ],
)
def test_assumptions_are_checked(capsys, assume, refused):
    code, _, err = _run(capsys, "--accounts", "10", "--assume", assume)
    assert code == 1 and err.count("\n") == 1 and refused in err


def test_help_lists_every_assumption_with_its_source(capsys):
    code, out, _ = _run(capsys, "--help")
    assert code == 0
    for name, (default, source) in Workload.sources().items():
        assert f"{name}={default:g}: {source[:30]}" in " ".join(out.split())


def test_docs_show_what_the_command_prints(capsys):
    """docs/deploying.md's tables are the command's output for 100, 1,000 and 5,000 accounts."""
    docs = DOCS.read_text()
    for accounts in SIZES:
        code, out, _ = _run(capsys, "--accounts", str(accounts))
        assert code == 0
        assert f"$ kopter deploy cost --accounts {accounts}\n{out}" in docs


def test_the_lines_add_up_and_every_price_is_cited(capsys, stack):
    code, out, _ = _run(capsys, "--accounts", "1000", "--json")
    assert code == 0
    answer = json.loads(out)
    assert math.isclose(answer["total_usd"], sum(line["usd"] for line in answer["lines"]))
    services = {line["service"] for line in answer["lines"]}
    for wanted in (
        "Fargate",
        "SQS",
        "DynamoDB",
        "ElastiCache",
        "Load balancer",
        "S3",
        "CloudFront",
        "CloudWatch",
        "Secrets Manager",
        "Cognito",
    ):
        assert wanted in services
    for line in answer["lines"]:
        assert math.isclose(line["usd"], line["quantity"] * line["unit_price_usd"])
        assert line["price_source"].startswith("https://")
    assert answer["prices_read"] == prices.READ
    for price in vars(prices).values():
        if isinstance(price, prices.Price):
            assert price.usd > 0 and "https://" in price.url and price.stated


def test_the_fleet_is_the_templates(stack):
    """Task sizes and counts come from the template: change a default there, the bill follows."""
    w = Workload()
    done = work(1000, w)
    services = {s.name: s for s in cost.fleet(stack, DEFAULT_GROUPS, done)}
    resources = stack["Resources"]
    ecs = {n for n, r in resources.items() if r["Type"] == "AWS::ECS::Service"}
    assert set(services) == ecs
    assert (services["BeatService"].tasks, services["FlowerService"].tasks) == (2, 1)
    assert services["ApiService"].tasks == stack["Parameters"]["ApiTasks"]["Default"]
    assert (services["ApiService"].vcpu, services["ApiService"].memory_gb) == (0.5, 1)

    changed = copy.deepcopy(stack)
    changed["Parameters"]["WorkerRealtimeCpu"]["Default"] = 2048
    changed["Parameters"]["ApiTasks"]["Default"] = 5
    before = {s.name: s for s in cost.fleet(stack, DEFAULT_GROUPS, done)}
    after = {s.name: s for s in cost.fleet(changed, DEFAULT_GROUPS, done)}
    assert after["WorkerRealtimeService"].vcpu == 2 != before["WorkerRealtimeService"].vcpu
    assert after["ApiService"].tasks == 5
    _, lines = cost.bill(changed, DEFAULT_GROUPS, 1000, w)
    _, base = cost.bill(stack, DEFAULT_GROUPS, 1000, w)
    assert lines[0].quantity > base[0].quantity  # more vCPU-hours


def test_workers_are_scaled_by_the_policys_arithmetic(stack):
    w = Workload()
    for accounts in SIZES:
        done = work(accounts, w)
        services = {s.name: s for s in cost.fleet(stack, DEFAULT_GROUPS, done)}
        for g in DEFAULT_GROUPS:
            arrivals = sum(done.messages.get(q, 0) for q in g.queues) / SECONDS
            busy = sum(done.busy.get(q, 0) for q in g.queues) / SECONDS
            target = stack["Parameters"][g.logical + "BacklogPerTask"]["Default"]
            want = tasks(arrivals, busy / arrivals, g.processes, target, g.least, 10**9)
            assert services[g.logical + "Service"].tasks == want
            assert want >= math.ceil(busy / g.processes)  # never fewer than the work needs


def test_more_accounts_cost_more_and_per_account_items_scale_with_them(stack):
    w = Workload()
    small = bill.estimate(stack, DEFAULT_GROUPS, 100, w)
    large = bill.estimate(stack, DEFAULT_GROUPS, 1000, w)
    assert large.total > small.total
    per = {(x.service, x.item): x.quantity for x in small.lines}
    for line in large.lines:
        if line.item.startswith(("write request", "read request", "GB-months stored")):
            assert math.isclose(line.quantity, 10 * per[(line.service, line.item)], rel_tol=0.01)


def test_assumptions_change_the_work(stack):
    base = work(1000, Workload())
    more = work(1000, Workload.with_assumptions(["records_per_account_day=20000"]))
    assert math.isclose(more.records, 2 * base.records)
    assert more.busy["ingest"] > base.busy["ingest"]
    assert more.busy["describer"] == base.busy["describer"]


def test_lambda_runs_the_same_tasks_for_the_same_time(stack):
    w = Workload()
    e = bill.estimate(stack, DEFAULT_GROUPS, 1000, w)
    requests, gb_seconds = e.on_lambda
    assert math.isclose(requests.quantity * 1e6, sum(e.work.messages.values()))
    assert math.isclose(gb_seconds.quantity, sum(e.work.busy.values()) * w.lambda_memory_mb / 1024)
    workers = [s for s in e.services if s.worker]
    assert math.isclose(e.workers[0].quantity, sum(s.tasks * s.vcpu for s in workers) * HOURS)


def test_beats_messages_are_the_schedules():
    per_day = 0
    for entry in beat_schedule().values():
        schedule = entry["schedule"]
        per_day += len(schedule.hour) * len(schedule.minute)
    assert per_day == usage.BEAT_MESSAGES_PER_DAY
    describer = beat_schedule()["ec2-describer"]["schedule"]
    assert len(describer.hour) * len(describer.minute) == usage.CHORD_MESSAGES_PER_DAY


def test_the_web_apps_files_are_the_builds(tmp_path):
    from kopter.api.web import build
    from kopter.settings import load

    files = build(load({}), tmp_path / "app")
    fetched = [f for f in files if not f.name.endswith(".LICENSE")]
    assert usage.value("web_files") == len(fetched)


def test_every_figure_names_where_it_was_counted():
    for name, figure in usage.FIGURES.items():
        assert figure.counted and figure.per, name
        if not figure.recounted:
            assert re.search(r"benchmarks/\w+\.py|tests/\w+", figure.counted), name
