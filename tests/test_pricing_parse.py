"""Offer files to prices: the streaming reader and the catalog's rules, real and written files."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from kopter.pricing.catalog import PriceKey, build_catalog
from kopter.pricing.offerfile import OFFERS, OfferFileError, OfferHeader, Products, read_offer
from kopter.pricing.store import to_item
from kopter.tables import Ec2Price, ReservedPrice
from tests.support.offers import EU_WEST_3, US_EAST_1, P, offer, write_offer
from tests.support.samples import FIXTURES

pytestmark = pytest.mark.unit

REAL_2018 = (
    FIXTURES / "pricing" / "spinnaker-clouddriver_AmazonEC2_us-west-2_offer_excerpt_2018.json"
)


def _chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize("chunk", [1, 13, 4096, 1 << 20])
def test_the_real_2018_file_reads_whole_in_any_chunking(chunk):
    data = REAL_2018.read_bytes()
    expected = json.loads(data)
    header = OfferHeader()
    products, terms = {}, {"OnDemand": {}, "Reserved": {}}
    for batch in read_offer(_chunks(data, chunk), header):
        if isinstance(batch, Products):
            products.update(batch.entries)
        else:
            terms[batch.kind].update(batch.entries)
    assert header.version == "20180504231021"
    assert header.fields["publicationDate"] == "2018-05-04T23:10:21Z"
    assert products.keys() == expected["products"].keys()
    for kind in ("OnDemand", "Reserved"):
        assert terms[kind].keys() == expected["terms"][kind].keys()
    i3 = products["7UU97PUEUDTUMDMP"]
    assert i3.productFamily == "Compute Instance (bare metal)"
    assert (i3.attributes.instanceType, i3.attributes.preInstalledSw) == ("i3.metal", "SQL Ent")
    assert i3.attributes.marketoption == "" and i3.attributes.regionCode == ""  # 2018: absent
    reserved = OFFERS.decode(terms["Reserved"]["PYDH5P62F8KBF85B"])["PYDH5P62F8KBF85B.HU7G6KETJZ"]
    units = {d.unit: d.pricePerUnit.USD for d in reserved.priceDimensions.values()}
    assert units["Quantity"] == "31962"
    assert reserved.termAttributes.PurchaseOption == "Partial Upfront"


def test_the_real_2018_file_keeps_its_products_without_a_region_code():
    catalog = build_catalog([REAL_2018.read_bytes()], "us-west-2")
    assert catalog.products == 7 and catalog.version == "20180504231021"
    # Its terms were sampled apart from its products: every kept product is unpriced.
    assert len(catalog) == 0 and catalog.unpriced == 6


@pytest.mark.parametrize("chunk", [7, 1 << 20])
def test_catalog_rules_give_exact_prices(tmp_path, chunk):
    data = write_offer(tmp_path / "o.json", "us-east-1", "v1", US_EAST_1).read_bytes()
    catalog = build_catalog(_chunks(data, chunk), "us-east-1")
    rows = {str(r.key): r for r in catalog.rows()}
    linux = rows["m5.large#Linux#Shared#No License required#NA"]
    assert linux.on_demand_hourly_usd == Decimal("0.0960000000")
    assert str(linux.on_demand_hourly_usd) == "0.0960000000"  # Decimal, as written, never float
    reserved = {(r.lease_length, r.offering_class, r.purchase_option): r for r in linux.reserved}
    assert reserved["1yr", "standard", "No Upfront"].hourly_usd == Decimal("0.06")
    assert reserved["1yr", "standard", "No Upfront"].upfront_usd == 0
    assert reserved["1yr", "standard", "All Upfront"].upfront_usd == Decimal("494")
    assert rows["m5.large#Windows#Shared#No License required#SQL Std"].on_demand_hourly_usd == (
        Decimal("0.576")
    )
    assert rows["m5.large#Linux#Dedicated#No License required#NA"].on_demand_hourly_usd == (
        Decimal("0.105")
    )
    assert "m5.large#Windows#Shared#Bring your own license#NA" in rows
    assert rows["u7in-32tb.224xlarge#Linux#Shared#No License required#NA"].on_demand_hourly_usd == (
        Decimal("407.2")
    )
    # Not kept: a capacity reservation, a Local Zone, a Dedicated Host, a product with no price.
    assert rows["c5.xlarge#Linux#Shared#No License required#NA"].on_demand_hourly_usd == (
        Decimal("0.17")
    )
    assert len(rows) == 7 and catalog.unpriced == 1 and catalog.products == len(US_EAST_1)
    # The duplicate: the higher price wins, and it is reported.
    t3 = PriceKey("t3.micro", "Linux", "Shared", "No License required", "NA")
    assert catalog.row(t3).on_demand_hourly_usd == Decimal("0.0116")
    [duplicate] = catalog.duplicates
    assert duplicate.key == t3 and duplicate.kept == catalog.row(t3).sku


def test_compact_files_and_braces_inside_strings_read_the_same(tmp_path):
    products = [
        *EU_WEST_3,
        P("m6i.large", on_demand="0.1110000000", extra={"note": 'a } b }, {"x": 1}, {'}),
        P("m6i.xlarge", on_demand="0.2220000000", extra={"note": '}\\\\" , "y" : {'}),
    ]
    doc = offer("eu-west-3", "v2", products)
    pretty = json.dumps(doc, indent=2).encode()
    compact = json.dumps(doc, separators=(",", ":")).encode()
    for data in (pretty, compact):
        for chunk in (3, 64, 1 << 20):
            catalog = build_catalog(_chunks(data, chunk), "eu-west-3")
            prices = {r.key.instance_type: r.on_demand_hourly_usd for r in catalog.rows()}
            assert prices == {
                "m5.large": Decimal("0.112"),
                "x2iezn.12xlarge": Decimal("11.88"),
                "m6i.large": Decimal("0.111"),
                "m6i.xlarge": Decimal("0.222"),
            }


@pytest.mark.parametrize(
    ("damage", "says"),
    [
        (lambda d: d[: len(d) // 2], "ends inside"),
        (lambda d: d[:-3], "ends inside"),
        (lambda d: d[:20], "ends"),
        (lambda d: b"<html>Service Unavailable</html>", "expected '{'"),
        (lambda d: b"", "ends early"),
        (lambda d: d.replace(b'"terms" : {', b'"terms" : [', 1), "expected '{'"),
        (lambda d: d.replace(b'"0.1700000000"', b"0.17", 1), "not an offer file"),
        (lambda d: d.replace(b'"0.1700000000"', b'"0,17"', 1), "not a price"),
        (lambda d: d.replace(b'"0.0600000000"', b'"-1"', 1), "without plain prices"),
        (lambda d: d + b"{}", "after the end"),
    ],
)
def test_a_damaged_file_is_refused_with_where(tmp_path, damage, says):
    data = write_offer(tmp_path / "o.json", "us-east-1", "v1", US_EAST_1).read_bytes()
    with pytest.raises(OfferFileError, match=says) as refused:
        build_catalog(_chunks(damage(data), 4096), "us-east-1")
    assert "at byte" in str(refused.value) or "SKU" in str(refused.value)


def test_rows_are_written_exactly_as_the_model_would_write_them(tmp_path):
    data = write_offer(tmp_path / "o.json", "us-east-1", "v1", US_EAST_1).read_bytes()
    catalog = build_catalog([data], "us-east-1")
    now = datetime(2026, 11, 27, 13, 0, 1, 123456, tzinfo=UTC)
    for key, kept in catalog.kept.items():
        row = catalog.row(key)
        model = Ec2Price(
            "us-east-1",
            str(key),
            instance_type=key.instance_type,
            operating_system=key.operating_system,
            tenancy=key.tenancy,
            license_model=key.license_model,
            pre_installed_sw=key.pre_installed_sw,
            sku=row.sku,
            on_demand_hourly_usd=row.on_demand_hourly_usd,
            reserved=[ReservedPrice(**r._asdict()) for r in row.reserved],
            offer_version="v1",
            gone=False,
            updated_at=now,
            digest=kept.digest(),
        )
        updated_at = Ec2Price.updated_at.serialize(now)
        item = to_item("us-east-1", key, kept, kept.digest(), "v1", updated_at)
        # The same attributes and values (numbers may be spelled differently: "0E-10").
        assert Ec2Price.from_raw_data(item).serialize() == model.serialize()
        assert item.keys() == model.serialize().keys()
