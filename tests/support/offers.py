"""Small offer files written the way AWS writes them, with exactly the products a test names."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ON_DEMAND_TERM = "JRTCKXETXF"
# (lease, class, option) -> AWS's offer term code
RESERVED_TERMS = {
    ("1yr", "standard", "No Upfront"): "4NA7Y494T4",
    ("1yr", "standard", "Partial Upfront"): "HU7G6KETJZ",
    ("1yr", "standard", "All Upfront"): "6QCMYABX3D",
    ("3yr", "convertible", "No Upfront"): "7NE97W5U4E",
}


@dataclass
class P:
    """One product and its prices: on-demand hourly, reserved {(lease, class, option): (upfront,
    hourly)}."""

    instance_type: str
    os: str = "Linux"
    tenancy: str = "Shared"
    license: str = "No License required"
    software: str = "NA"
    on_demand: str | None = "0.1000000000"
    reserved: dict[tuple[str, str, str], tuple[str, str]] = field(default_factory=dict)
    family: str = "Compute Instance"
    capacity: str | None = "Used"
    market: str | None = "OnDemand"
    region_code: str | None = None  # None: the file's region
    extra: dict[str, str] = field(default_factory=dict)
    sku: str = ""


def sku_of(p: P) -> str:
    """Stable, as AWS's are: the same product keeps its SKU from one version to the next."""
    seed = repr((p.instance_type, p.os, p.tenancy, p.license, p.software, p.family, p.capacity))
    seed += repr((p.market, p.region_code, sorted(p.extra.items())))
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    digest = hashlib.sha256(seed.encode()).digest()
    return "".join(alphabet[b % len(alphabet)] for b in digest[:16])


def offer(region: str, version: str, products: list[P]) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "formatVersion": "v1.0",
        "disclaimer": "This pricing list is for informational purposes only.",
        "offerCode": "AmazonEC2",
        "version": version,
        "publicationDate": "2026-11-01T00:00:00Z",
        "products": {},
        "terms": {"OnDemand": {}, "Reserved": {}},
    }
    for p in products:
        sku = p.sku or sku_of(p)
        attributes = {
            "servicecode": "AmazonEC2",
            "location": "US East (N. Virginia)",
            "locationType": "AWS Region",
            "instanceType": p.instance_type,
            "tenancy": p.tenancy,
            "operatingSystem": p.os,
            "licenseModel": p.license,
            "usagetype": f"BoxUsage:{p.instance_type}",
            "operation": "RunInstances",
            "preInstalledSw": p.software,
            "servicename": "Amazon Elastic Compute Cloud",
            **({"capacitystatus": p.capacity} if p.capacity else {}),
            **({"marketoption": p.market} if p.market else {}),
            "regionCode": p.region_code or region,
            **p.extra,
        }
        doc["products"][sku] = {"sku": sku, "productFamily": p.family, "attributes": attributes}
        if p.on_demand is not None:
            code = f"{sku}.{ON_DEMAND_TERM}"
            doc["terms"]["OnDemand"][sku] = {
                code: {
                    "offerTermCode": ON_DEMAND_TERM,
                    "sku": sku,
                    "effectiveDate": "2026-11-01T00:00:00Z",
                    "priceDimensions": {
                        f"{code}.6YS6EN2CT7": {
                            "rateCode": f"{code}.6YS6EN2CT7",
                            "description": f"${p.on_demand} per {p.os} {p.instance_type} hour",
                            "beginRange": "0",
                            "endRange": "Inf",
                            "unit": "Hrs",
                            "pricePerUnit": {"USD": p.on_demand},
                            "appliesTo": [],
                        }
                    },
                    "termAttributes": {},
                }
            }
        for (lease, klass, option), (upfront, hourly) in p.reserved.items():
            code = f"{sku}.{RESERVED_TERMS[(lease, klass, option)]}"
            dimensions = {
                f"{code}.6YS6EN2CT7": {
                    "rateCode": f"{code}.6YS6EN2CT7",
                    "description": "USD per hour",
                    "unit": "Hrs",
                    "pricePerUnit": {"USD": hourly},
                    "appliesTo": [],
                }
            }
            if upfront != "0":
                dimensions[f"{code}.2TG2D8R56U"] = {
                    "rateCode": f"{code}.2TG2D8R56U",
                    "description": "Upfront Fee",
                    "unit": "Quantity",
                    "pricePerUnit": {"USD": upfront},
                    "appliesTo": [],
                }
            doc["terms"]["Reserved"].setdefault(sku, {})[code] = {
                "offerTermCode": RESERVED_TERMS[(lease, klass, option)],
                "sku": sku,
                "effectiveDate": "2026-11-01T00:00:00Z",
                "priceDimensions": dimensions,
                "termAttributes": {
                    "LeaseContractLength": lease,
                    "OfferingClass": klass,
                    "PurchaseOption": option,
                },
            }
    return doc


def write_offer(path: Path, region: str, version: str, products: list[P]) -> Path:
    """Pretty-printed as AWS does (two spaces, ``"key" : value``)."""
    text = json.dumps(offer(region, version, products), indent=2).replace('": ', '" : ')
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# The products every pricing test can count on, for us-east-1 and eu-west-3.
US_EAST_1 = [
    P(
        "m5.large",
        on_demand="0.0960000000",
        reserved={
            ("1yr", "standard", "No Upfront"): ("0", "0.0600000000"),
            ("1yr", "standard", "All Upfront"): ("494", "0.0000000000"),
            ("3yr", "convertible", "No Upfront"): ("0", "0.0520000000"),
        },
    ),
    P("m5.large", os="Windows", software="SQL Std", on_demand="0.5760000000"),
    P("m5.large", tenancy="Dedicated", on_demand="0.1050000000"),
    P("m5.large", os="Windows", license="Bring your own license", on_demand="0.0960000000"),
    P("m5.large", capacity="UnusedCapacityReservation", on_demand="0.0960000000"),
    P("c5.xlarge", on_demand="0.1700000000"),
    # Two products for one key, as real files have: the higher price wins.
    P("t3.micro", on_demand="0.0104000000", extra={"operation": "RunInstances"}),
    P("t3.micro", on_demand="0.0116000000", extra={"operation": "RunInstances:0001"}),
    # A Local Zone's product in the parent region's file.
    P("c5.xlarge", on_demand="0.2040000000", region_code="us-east-1-bos-1"),
    P("u7in-32tb.224xlarge", on_demand="407.2000000000"),
    P("m5.large", family="Dedicated Host", on_demand="5.0000000000"),
    P("m5.large", os="RHEL", on_demand=None),  # kept as a product, priced nowhere
]
EU_WEST_3 = [
    P("m5.large", on_demand="0.1120000000"),
    P("x2iezn.12xlarge", on_demand="11.8800000000"),  # not offered in us-east-1 here
]


# What the aggregator's tests and the web app's price: a small fleet's types.
SMALL_FLEET_PRICES = [
    P("m5.large", on_demand="0.1530000000"),
    P("t3.micro", on_demand="0.0134000000"),
    P("c5.xlarge", os="Windows", on_demand="0.3540000000"),
]
