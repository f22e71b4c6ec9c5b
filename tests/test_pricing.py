"""The price list end to end: files served over HTTP on 127.0.0.1, a real `pricing` worker,
moto's DynamoDB, Redis, and the `kopter` command line."""

from __future__ import annotations

import json
import os
import secrets
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest

from kopter import cache
from kopter.pricing import refresh
from kopter.pricing.cache import PriceCache
from kopter.pricing.offerserver import BASE, OfferServer, write_offers
from kopter.pricing.source import HttpSource
from kopter.pricing.store import DynamoPriceTable
from kopter.settings import get_settings, load
from tests.conftest import MOTO_PORT
from tests.support import drain
from tests.support.offers import EU_WEST_3, US_EAST_1, P, offer, write_offer
from tests.support.proxy import RecordingProxy
from tests.support.samples import FIXTURES

pytestmark = pytest.mark.long

DYNAMODB_WRITES = ("BatchWriteItem", "PutItem", "UpdateItem", "TransactWriteItems")


def _version() -> str:
    return f"2026{secrets.token_hex(5)}"


def _file(root: Path, region: str, version: str) -> str:
    return f"/{BASE}/{version}/{region}/index.json"


@pytest.fixture(autouse=True)
def _pricing_queue_empty() -> None:
    """Other modules' beats leave their hourly price refresh on the `pricing` queue; a worker
    started here would run it against this test's prices and import twice."""
    drain.empty("pricing")


@pytest.fixture
def served(tmp_path):
    """us-east-1 and eu-west-3 offered under fresh versions."""
    root = tmp_path / "offers"
    versions = {"us-east-1": _version(), "eu-west-3": _version()}
    write_offers(
        root,
        {
            "us-east-1": (
                versions["us-east-1"],
                write_offer(tmp_path / "use1.json", "us-east-1", versions["us-east-1"], US_EAST_1),
            ),
            "eu-west-3": (
                versions["eu-west-3"],
                write_offer(tmp_path / "euw3.json", "eu-west-3", versions["eu-west-3"], EU_WEST_3),
            ),
        },
    )
    with OfferServer(root) as server:
        server.versions = versions
        yield server


def _env(server: OfferServer, **extra: str) -> dict[str, str]:
    return {
        "KOPTER_PRICING_URL": server.url,
        "KOPTER_PRICING_REGIONS": "us-east-1,eu-west-3",
        **extra,
    }


def _prices(kopter, region: str, *options: str) -> dict[str, dict]:
    rows = kopter.rows("prices", "--region", region, *options)
    return {
        "#".join((r["instance_type"], r["os"], r["tenancy"], r["license"], r["software"])): r
        for r in rows
    }


def _writes(proxy: RecordingProxy) -> Counter[str]:
    calls: Counter[str] = Counter()
    for r in proxy.requests:
        operation = r.headers.get("X-Amz-Target", "").rpartition(".")[2]
        if operation in DYNAMODB_WRITES:
            calls[operation] += 1
    return calls


def test_a_worker_imports_exact_prices_and_an_unchanged_hour_costs_one_request(
    kopter, workers, served
):
    with RecordingProxy(MOTO_PORT) as proxy:
        env = _env(served, KOPTER_AWS_ENDPOINT_URL=proxy.url)
        worker = workers.start("pricing", "pricing", env=env)
        workers.wait_ready(worker)

        first = json.loads(kopter("run", "pricing", "--wait", env=env).stdout.split("\n", 1)[1])
        assert sorted(first["importing"]) == ["eu-west-3", "us-east-1"]
        imported = {i["region"]: i for i in first["imports"]}
        assert imported["us-east-1"]["status"] == "imported"
        assert imported["us-east-1"]["rows"] == 7 and imported["us-east-1"]["duplicates"] == 1

        use1 = _prices(kopter, "us-east-1")
        linux = use1["m5.large#Linux#Shared#No License required#NA"]
        assert Decimal(linux["on_demand_hourly_usd"]) == Decimal("0.096")
        no_upfront = [
            r
            for r in linux["reserved"]
            if (r["lease"], r["class"], r["option"]) == ("1yr", "standard", "No Upfront")
        ]
        assert [Decimal(r["hourly_usd"]) for r in no_upfront] == [Decimal("0.06")]
        sql = use1["m5.large#Windows#Shared#No License required#SQL Std"]
        assert Decimal(sql["on_demand_hourly_usd"]) == Decimal("0.576")
        dedicated = use1["m5.large#Linux#Dedicated#No License required#NA"]
        assert Decimal(dedicated["on_demand_hourly_usd"]) == Decimal("0.105")
        # An instance type that us-east-1 does not have is priced in its own region.
        assert (
            kopter.rows("prices", "--region", "us-east-1", "--instance-type", "x2iezn.12xlarge")
            == []
        )
        [x2] = kopter.rows("prices", "--region", "eu-west-3", "--instance-type", "x2iezn.12xlarge")
        assert Decimal(x2["on_demand_hourly_usd"]) == Decimal("11.88")
        # The aggregator's look-up: from Redis.
        settings = get_settings()
        prices = PriceCache(cache.client(settings), settings.prefix)
        assert prices.on_demand(
            "eu-west-3", ["x2iezn.12xlarge#Linux#Shared#No License required#NA"]
        ) == {"x2iezn.12xlarge#Linux#Shared#No License required#NA": Decimal("11.88")}

        # The next hour, nothing changed: the index answers 304, no region file, no write.
        served.clear()
        proxy.requests.clear()
        second = json.loads(kopter("run", "pricing", "--wait", env=env).stdout.split("\n", 1)[1])
        assert second["importing"] == [] and sorted(second["unchanged"]) == [
            "eu-west-3",
            "us-east-1",
        ]
        assert sum(served.requests.values()) == 0
        assert sum(served.not_modified.values()) == 1
        assert _writes(proxy) == Counter()


def test_a_new_version_writes_only_what_changed_and_marks_what_left(
    kopter, workers, served, tmp_path
):
    env = _env(served)
    worker = workers.start("pricing", "pricing", env=env)
    workers.wait_ready(worker)
    kopter("run", "pricing", "--wait", env=env)

    version = _version()
    changed = [p for p in US_EAST_1 if p.instance_type != "c5.xlarge"]  # c5.xlarge leaves
    changed[0] = P("m5.large", on_demand="0.0990000000", reserved=US_EAST_1[0].reserved)
    write_offers(
        served.root,
        {
            "us-east-1": (
                version,
                write_offer(tmp_path / "v2.json", "us-east-1", version, changed),
            ),
            "eu-west-3": (
                served.versions["eu-west-3"],
                served.root
                / _file(served.root, "eu-west-3", served.versions["eu-west-3"]).lstrip("/"),
            ),
        },
    )
    with RecordingProxy(MOTO_PORT) as proxy:
        worker.stop()
        env = _env(served, KOPTER_AWS_ENDPOINT_URL=proxy.url)
        worker = workers.start("pricing2", "pricing", env=env)
        workers.wait_ready(worker)
        out = json.loads(kopter("run", "pricing", "--wait", env=env).stdout.split("\n", 1)[1])
    [result] = out["imports"]
    assert (result["region"], result["version"]) == ("us-east-1", version)
    assert (result["written"], result["unchanged"], result["gone"]) == (1, 5, 1)
    written = [
        json.loads(r.body)
        for r in proxy.requests
        if r.headers.get("X-Amz-Target", "").endswith("BatchWriteItem")
    ]
    items = [
        w["PutRequest"]["Item"]
        for b in written
        for reqs in b["RequestItems"].values()
        for w in reqs
    ]
    assert [i["price_key"]["S"] for i in items] == ["m5.large#Linux#Shared#No License required#NA"]
    use1 = _prices(kopter, "us-east-1", "--gone")
    assert Decimal(
        use1["m5.large#Linux#Shared#No License required#NA"]["on_demand_hourly_usd"]
    ) == Decimal("0.099")
    assert use1["c5.xlarge#Linux#Shared#No License required#NA"]["gone"] is True
    assert "c5.xlarge#Linux#Shared#No License required#NA" not in _prices(kopter, "us-east-1")


def test_an_import_longer_than_the_visibility_timeout_runs_once(kopter, workers, served):
    # The file trickles in over ~12 s; the queue's visibility timeout is 6 s in these tests.
    size = (
        (served.root / _file(served.root, "us-east-1", served.versions["us-east-1"]).lstrip("/"))
        .stat()
        .st_size
    )
    served.fault("us-east-1", "trickle", bytes_per_second=max(1, size // 12))
    env = _env(served, KOPTER_PRICING_REGIONS="us-east-1", KOPTER_TASK_TIME_LIMIT="60")
    env["KOPTER_PRICING_REGIONS"] = "us-east-1"
    worker = workers.start("pricing", "pricing", env=env)
    workers.wait_ready(worker)
    out = json.loads(kopter("run", "pricing", "--wait", env=env).stdout.split("\n", 1)[1])
    [result] = [i for i in out["imports"] if i["region"] == "us-east-1"]
    assert result["status"] == "imported" and result["seconds"] > 10
    assert served.requests[_file(served.root, "us-east-1", served.versions["us-east-1"])] == 1
    log = (Path(worker.log_path)).read_text()
    assert log.count("import_region_prices[") >= 1
    received = [
        line
        for line in log.splitlines()
        if "Task tasks.pricing.import_region_prices" in line and "received" in line.lower()
    ]
    assert len(received) == 1, received


@pytest.mark.parametrize("fault", ["500", "truncate", "stall", "not-json"])
def test_a_bad_download_keeps_the_stored_prices_and_says_so(served, tmp_path, fault):
    settings = load({**os.environ, **_env(served), "KOPTER_PRICING_TIMEOUT": "2"})
    source = HttpSource.from_settings(settings)
    table, prices = DynamoPriceTable(settings), PriceCache(cache.client(settings), settings.prefix)
    plan = refresh.plan(source, ["eu-west-3"])
    [offer] = plan.due
    good = refresh.import_offer(
        lambda: source.download(offer.url), "eu-west-3", offer.version, table, prices
    )
    assert good.status == "imported"

    version = _version()
    broken = tmp_path / "broken.json"
    if fault == "not-json":
        broken.write_text("<html><body>Service Unavailable</body></html>")
    else:
        changed = [P("m5.large", on_demand="0.5000000000"), *EU_WEST_3[1:]]
        write_offer(broken, "eu-west-3", version, changed)
        served.fault(version, fault)
    write_offers(served.root, {"eu-west-3": (version, broken)})
    [offer] = refresh.plan(source, ["eu-west-3"]).due
    result = refresh.import_offer(
        lambda: source.download(offer.url), "eu-west-3", offer.version, table, prices
    )

    assert result.status == "failed"
    assert "the stored prices of eu-west-3 are unchanged" in result.error
    stored = refresh.stored_state("eu-west-3")
    assert stored["version"] == good.version  # the next hour tries again
    assert stored["last_failure"]["version"] == version
    key = "m5.large#Linux#Shared#No License required#NA"
    assert prices.on_demand("eu-west-3", [key]) == {key: Decimal("0.112")}
    from kopter.pricing.store import find_prices

    [m5] = find_prices("eu-west-3", "m5.large")
    assert m5.on_demand_hourly_usd == Decimal("0.112")


def test_the_cache_is_rebuilt_from_the_table_when_redis_lost_it(served):
    settings = load({**os.environ, **_env(served)})
    source = HttpSource.from_settings(settings)
    prices = PriceCache(cache.client(settings), settings.prefix)
    [offer] = [o for o in refresh.plan(source, ["eu-west-3"]).due]
    refresh.import_offer(
        lambda: source.download(offer.url),
        "eu-west-3",
        offer.version,
        DynamoPriceTable(settings),
        prices,
    )
    cache.client(settings).delete(f"{settings.prefix}prices:eu-west-3")
    keys = [
        "m5.large#Linux#Shared#No License required#NA",
        "m9.nothing#Linux#Shared#No License required#NA",
    ]
    assert prices.on_demand("eu-west-3", keys) == {keys[0]: Decimal("0.112"), keys[1]: None}
    assert cache.client(settings).exists(f"{settings.prefix}prices:eu-west-3")


def test_pricing_import_from_a_file_shows_progress_and_a_summary(kopter, tmp_path):
    path = write_offer(tmp_path / "o.json", "eu-west-3", "20261127000000", EU_WEST_3)
    result = kopter("pricing", "import", str(path), "--region", "eu-west-3")
    assert "eu-west-3: imported version 20261127000000" in result.stdout
    assert "2 prices" in result.stdout
    assert "MB/s" in result.stderr
    again = kopter("pricing", "import", str(path), "--region", "eu-west-3")
    assert "(0 written, 2 unchanged, 0 gone)" in again.stdout

    named = kopter("pricing", "import", str(path))  # its products name their region
    assert "eu-west-3: imported version 20261127000000" in named.stdout
    nofile = kopter(
        "pricing", "import", str(tmp_path / "nope.json"), "--region", "eu-west-3", ok=False
    )
    assert "no such file" in nofile.stderr
    bad = tmp_path / "bad.json"
    bad.write_bytes(path.read_bytes()[:500])
    truncated = kopter("pricing", "import", str(bad), "--region", "eu-west-3", ok=False)
    assert "truncated" in truncated.stdout + truncated.stderr
    assert "stored prices of eu-west-3 are unchanged" in truncated.stdout + truncated.stderr


REAL_2018 = (
    FIXTURES / "pricing" / "spinnaker-clouddriver_AmazonEC2_us-west-2_offer_excerpt_2018.json"
)


def test_pricing_import_reads_the_region_from_the_products(kopter, tmp_path):
    # A region's file also lists its Local Zones' products: still one region, and theirs are
    # not its prices.
    products = [*EU_WEST_3, P("m5.large", on_demand="0.1500000000", region_code="us-west-2-lax-1")]
    oregon = write_offer(tmp_path / "index.json", "us-west-2", "20261201000000", products)
    out = kopter("pricing", "import", str(oregon))
    assert "us-west-2: imported version 20261201000000" in out.stdout
    assert "2 prices" in out.stdout
    [row] = kopter.rows("prices", "--region", "us-west-2", "--instance-type", "m5.large")
    assert row["on_demand_hourly_usd"] == "0.112"

    # A file older than regionCode names its region by location: the real 2018 file is Oregon's
    # (its terms were sampled apart from its products, so it holds no price to import).
    real = kopter("pricing", "import", str(REAL_2018), ok=False)
    assert "has 7 products and no instance price for us-west-2" in real.stdout

    # Several regions, or none: one line that asks for --region, and nothing imported.
    mixed = write_offer(
        tmp_path / "mixed.json",
        "us-west-2",
        "20261202000000",
        [P("m5.large", on_demand="0.2000000000", region_code="eu-west-3"), *EU_WEST_3],
    )
    refused = kopter("pricing", "import", str(mixed), ok=False)
    assert refused.stderr.splitlines()[-1] == (
        f"kopter: error: {mixed} names 2 regions (eu-west-3, us-west-2): pass --region R"
    )
    assert refused.stderr.count("kopter: error") == 1 and "Traceback" not in refused.stderr
    nameless = offer("us-west-2", "20261203000000", EU_WEST_3)
    for product in nameless["products"].values():
        del product["attributes"]["regionCode"], product["attributes"]["location"]
    unnamed = tmp_path / "unnamed.json"
    unnamed.write_text(json.dumps(nameless))
    refused = kopter("pricing", "import", str(unnamed), ok=False)
    assert refused.stderr.splitlines()[-1] == (
        f"kopter: error: {unnamed} names no region (no product has a regionCode or a known "
        "location): pass --region R"
    )
    assert refused.stderr.count("kopter: error") == 1 and "Traceback" not in refused.stderr
    [row] = kopter.rows("prices", "--region", "us-west-2", "--instance-type", "m5.large")
    assert row["on_demand_hourly_usd"] == "0.112"

    # Told the region, the mixed file imports that region's products.
    out = kopter("pricing", "import", str(mixed), "--region", "us-west-2")
    assert "us-west-2: imported version 20261202000000" in out.stdout
