"""A synthetic AWS Price List offer file: the regional `index.json` of AmazonEC2, at any size.

The shape follows AWS's real file: top-level keys `formatVersion`, `disclaimer`, `offerCode`,
`version`, `publicationDate`, `products`, `terms` (`OnDemand`, `Reserved`) and `attributesList`,
pretty-printed as AWS prints it (Jackson: 2-space indent, `"key" : value`, `[ ]` and `{ }` when
empty, arrays on one line), or compact. Products are a shuffled mix of the whole catalogue
(instance types x operating system / licence / pre-installed software x tenancy x capacity
status, bare metal, Dedicated Hosts, EBS, data transfer, NAT gateway, IP addresses, CPU
credits), so any prefix of it (a small file) is still a realistic mix.

Planted, whatever the size, and returned in `OfferFacts`: a few known on-demand prices, one known
reserved price, a duplicate (two Compute Instance/Used products with the same instance type, OS,
tenancy, licence model and pre-installed software but different SKUs and prices, differing only
by `operation`, as real files have), and an instance type that exists in this region only.

Deterministic: the same arguments give the same bytes; SKUs depend on the region and the product,
not on the version, as AWS's do. Streamed: the products go straight to the file while the two
term sections are spilled to temporary files beside it and appended at the end, so memory stays
small at any size.

    python -m benchmarks.offer_file /tmp/index.json --mb 300 [--compact] [--region eu-west-1]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import itertools
import json
import os
import random
import shutil
import sys
import tempfile
import time
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, NamedTuple

DISCLAIMER = (
    "This pricing list is for informational purposes only. All prices are subject to the "
    "additional terms included in the pricing pages on http://aws.amazon.com. All Free Tier "
    "prices are also subject to the terms included at https://aws.amazon.com/free/"
)
ON_DEMAND_TERM = "JRTCKXETXF"
HOURLY_RATE = "6YS6EN2CT7"
UPFRONT_RATE = "2TG2D8R56U"
# AWS's reserved offer term codes and what each means, in the order real files list them.
RESERVED_TERMS: tuple[tuple[str, str, str, str], ...] = (
    ("HU7G6KETJZ", "1yr", "standard", "Partial Upfront"),
    ("6QCMYABX3D", "1yr", "standard", "All Upfront"),
    ("4NA7Y494T4", "1yr", "standard", "No Upfront"),
    ("Z2E3P23VKM", "3yr", "convertible", "No Upfront"),
    ("38NPMPTW36", "3yr", "standard", "Partial Upfront"),
    ("BPH4J8HBKS", "3yr", "standard", "No Upfront"),
    ("NQ3QZPMQV9", "3yr", "standard", "All Upfront"),
    ("7NE97W5U4E", "1yr", "convertible", "No Upfront"),
    ("CUZHX8X6JH", "1yr", "convertible", "Partial Upfront"),
    ("VJWZNREJX2", "1yr", "convertible", "All Upfront"),
    ("R5XV2EPZQZ", "3yr", "convertible", "Partial Upfront"),
    ("MZU6U2429S", "3yr", "convertible", "All Upfront"),
)
# Region -> (location, usage-type prefix, price factor against us-east-1). us-east-1's instance
# usage types have no prefix; its data-transfer ones use USE1.
REGIONS: dict[str, tuple[str, str, float]] = {
    "us-east-1": ("US East (N. Virginia)", "", 1.0),
    "us-east-2": ("US East (Ohio)", "USE2-", 1.0),
    "us-west-1": ("US West (N. California)", "USW1-", 1.17),
    "us-west-2": ("US West (Oregon)", "USW2-", 1.0),
    "ca-central-1": ("Canada (Central)", "CAN1-", 1.11),
    "eu-west-1": ("EU (Ireland)", "EU-", 1.11),
    "eu-west-2": ("EU (London)", "EUW2-", 1.16),
    "eu-west-3": ("EU (Paris)", "EUW3-", 1.17),
    "eu-central-1": ("EU (Frankfurt)", "EUC1-", 1.19),
    "eu-north-1": ("EU (Stockholm)", "EUN1-", 1.06),
    "ap-northeast-1": ("Asia Pacific (Tokyo)", "APN1-", 1.29),
    "ap-northeast-2": ("Asia Pacific (Seoul)", "APN2-", 1.23),
    "ap-southeast-1": ("Asia Pacific (Singapore)", "APS1-", 1.25),
    "ap-southeast-2": ("Asia Pacific (Sydney)", "APS2-", 1.25),
    "ap-south-1": ("Asia Pacific (Mumbai)", "APS3-", 1.05),
    "sa-east-1": ("South America (Sao Paulo)", "SAE1-", 1.59),
}
# One instance type per region that no other region's file has (high-memory types launch in a
# few regions first); regions not listed get one of the fallbacks by hash.
REGION_ONLY_TYPES = {
    "us-east-1": "u7in-32tb.224xlarge",
    "us-east-2": "u7in-24tb.224xlarge",
    "us-west-2": "u7in-16tb.224xlarge",
    "eu-west-1": "u7i-12tb.224xlarge",
    "eu-central-1": "u7i-8tb.112xlarge",
    "ap-northeast-1": "u7i-6tb.112xlarge",
}
_REGION_ONLY_FALLBACKS = ("u-24tb1.112xlarge", "u-18tb1.112xlarge", "u-12tb1.112xlarge")
SERVICE_NAME = "Amazon Elastic Compute Cloud"


class PriceKey(NamedTuple):
    """What identifies a Compute Instance price: the filter a pricing importer applies."""

    instance_type: str
    operating_system: str
    tenancy: str
    license_model: str
    pre_installed_sw: str


@dataclass(frozen=True)
class ReservedFact:
    key: PriceKey
    sku: str
    lease_contract_length: str
    offering_class: str
    purchase_option: str
    hourly_usd: str


@dataclass(frozen=True)
class DuplicateFact:
    """Two Compute Instance/Used products with the same PriceKey. The first is the ordinary one
    (with Reserved terms); the second differs only by `operation` and price, and has none."""

    key: PriceKey
    skus: tuple[str, str]
    on_demand_usd: tuple[str, str]
    operations: tuple[str, str]


@dataclass
class OfferFacts:
    path: Path
    region: str
    version: str
    compact: bool
    bytes_written: int = 0
    products: int = 0
    products_by_family: dict[str, int] = field(default_factory=dict)
    # productFamily "Compute Instance" and capacitystatus "Used": what a price importer keeps.
    compute_used_products: int = 0
    compute_used_keys: int = 0  # distinct PriceKeys among them (one fewer: the duplicate)
    instance_types: int = 0  # distinct instanceType among "Compute Instance" products
    on_demand_terms: int = 0
    reserved_terms: int = 0
    # Known on-demand hourly USD of Compute Instance/Used products (the duplicate excluded).
    on_demand_prices: dict[PriceKey, str] = field(default_factory=dict)
    reserved_price: ReservedFact | None = None  # 1yr standard No Upfront
    duplicate: DuplicateFact | None = None
    region_only_instance_type: str = ""


# -- the catalogue ---------------------------------------------------------------------------


_Json = dict[str, Any]  # a piece of the offer's JSON
# An instance product not rendered yet: (family index, size, platform index, tenancy, capacity).
_Slot = tuple[int, str, int, str, str]


class _Family(NamedTuple):
    name: str
    category: str  # instanceFamily
    processor: str
    clock: str
    cpu: str  # intel | amd | graviton
    mem_per_vcpu: float
    usd_per_vcpu: float  # Linux, Shared, us-east-1
    sizes: tuple[str, ...]
    current: bool = True
    storage: str = ""  # e.g. "NVMe SSD": instance store, sized from the vCPUs
    metal: bool = False
    gpu_memory_gb: int = 0  # per GPU; 0 = no GPU


_STD = ("large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge")
_BIG = (*_STD, "32xlarge", "48xlarge")
_GRAV = ("medium", *_STD[:7])
_GRAV48 = ("medium", *_STD, "48xlarge")
_C5 = ("large", "xlarge", "2xlarge", "4xlarge", "9xlarge", "12xlarge", "18xlarge", "24xlarge")
_OLD = ("large", "xlarge", "2xlarge", "4xlarge", "10xlarge", "16xlarge")
_BURST = ("nano", "micro", "small", "medium", "large", "xlarge", "2xlarge")
_FLEX = ("large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge")
_GP, _CO, _MO, _SO, _AC = (
    "General purpose",
    "Compute optimized",
    "Memory optimized",
    "Storage optimized",
    "GPU instance",
)
_SKY, _CAS = "Intel Xeon Platinum 8175 (Skylake)", "Intel Xeon Platinum 8259 (Cascade Lake)"
_ICE, _SPR = "Intel Xeon 8375C (Ice Lake)", "Intel Xeon Scalable (Sapphire Rapids)"
_EPYC1, _EPYC3, _EPYC4 = "AMD EPYC 7571", "AMD EPYC 7R13 Processor", "AMD EPYC 9R14 Processor"
_G2, _G3, _G4 = "AWS Graviton2 Processor", "AWS Graviton3 Processor", "AWS Graviton4 Processor"
_F = _Family
# fmt: off
FAMILIES: tuple[_Family, ...] = (
    _F("m4", _GP, "Intel Xeon E5-2676 v3 (Haswell)", "2.4 GHz", "intel", 4, 0.05, _OLD, False),
    _F("m5", _GP, _SKY, "3.1 GHz", "intel", 4, 0.048, _STD, metal=True),
    _F("m5a", _GP, _EPYC1, "2.5 GHz", "amd", 4, 0.043, _STD),
    _F("m5d", _GP, _SKY, "3.1 GHz", "intel", 4, 0.0565, _STD, storage="NVMe SSD", metal=True),
    _F("m5n", _GP, _CAS, "3.1 GHz", "intel", 4, 0.0595, _STD, metal=True),
    _F("m5zn", _GP, "Intel Xeon Platinum 8252", "4.5 GHz", "intel", 4, 0.0826, _C5[:5]),
    _F("m6i", _GP, _ICE, "3.5 GHz", "intel", 4, 0.048, _BIG, metal=True),
    _F("m6id", _GP, _ICE, "3.5 GHz", "intel", 4, 0.0593, _BIG, storage="NVMe SSD"),
    _F("m6in", _GP, _ICE, "3.5 GHz", "intel", 4, 0.0696, _BIG),
    _F("m6a", _GP, _EPYC3, "3.6 GHz", "amd", 4, 0.0432, _BIG, metal=True),
    _F("m6g", _GP, _G2, "2.5 GHz", "graviton", 4, 0.0385, _GRAV, metal=True),
    _F("m6gd", _GP, _G2, "2.5 GHz", "graviton", 4, 0.0452, _GRAV, storage="NVMe SSD"),
    _F("m7i", _GP, _SPR, "3.2 GHz", "intel", 4, 0.0504, _BIG, metal=True),
    _F("m7i-flex", _GP, _SPR, "3.2 GHz", "intel", 4, 0.04788, _FLEX),
    _F("m7a", _GP, _EPYC4, "3.7 GHz", "amd", 4, 0.05796, _BIG, metal=True),
    _F("m7g", _GP, _G3, "2.6 GHz", "graviton", 4, 0.0408, _GRAV, metal=True),
    _F("m7gd", _GP, _G3, "2.6 GHz", "graviton", 4, 0.05335, _GRAV, storage="NVMe SSD"),
    _F("m8g", _GP, _G4, "2.8 GHz", "graviton", 4, 0.04488, _GRAV48, metal=True),
    _F("t2", _GP, "Intel Xeon Family", "Up to 3.3 GHz", "intel", 4, 0.0058, _BURST),
    _F("t3", _GP, _SKY, "2.5 GHz", "intel", 4, 0.0052, _BURST),
    _F("t3a", _GP, _EPYC1, "2.5 GHz", "amd", 4, 0.0047, _BURST),
    _F("t4g", _GP, _G2, "2.5 GHz", "graviton", 4, 0.0042, _BURST),
    _F("c4", _CO, "Intel Xeon E5-2666 v3 (Haswell)", "2.9 GHz", "intel", 1.875, 0.05, _OLD, False),
    _F("c5", _CO, _SKY, "3.4 GHz", "intel", 2, 0.0425, _C5, metal=True),
    _F("c5a", _CO, "AMD EPYC 7R32", "3.3 GHz", "amd", 2, 0.0385, _C5),
    _F("c5d", _CO, _SKY, "3.4 GHz", "intel", 2, 0.048, _C5, storage="NVMe SSD", metal=True),
    _F("c5n", _CO, _SKY, "3.0 GHz", "intel", 2.625, 0.054, _C5[:6], metal=True),
    _F("c6i", _CO, _ICE, "3.5 GHz", "intel", 2, 0.0425, _BIG, metal=True),
    _F("c6id", _CO, _ICE, "3.5 GHz", "intel", 2, 0.0504, _BIG, storage="NVMe SSD"),
    _F("c6in", _CO, _ICE, "3.5 GHz", "intel", 2, 0.0567, _BIG),
    _F("c6a", _CO, _EPYC3, "3.6 GHz", "amd", 2, 0.0383, _BIG, metal=True),
    _F("c6g", _CO, _G2, "2.5 GHz", "graviton", 2, 0.034, _GRAV, metal=True),
    _F("c6gd", _CO, _G2, "2.5 GHz", "graviton", 2, 0.0384, _GRAV, storage="NVMe SSD"),
    _F("c6gn", _CO, _G2, "2.5 GHz", "graviton", 2, 0.0432, _GRAV),
    _F("c7i", _CO, _SPR, "3.2 GHz", "intel", 2, 0.04463, _BIG, metal=True),
    _F("c7i-flex", _CO, _SPR, "3.2 GHz", "intel", 2, 0.0424, _FLEX),
    _F("c7a", _CO, _EPYC4, "3.7 GHz", "amd", 2, 0.05133, _BIG, metal=True),
    _F("c7g", _CO, _G3, "2.6 GHz", "graviton", 2, 0.03625, _GRAV, metal=True),
    _F("c7gd", _CO, _G3, "2.6 GHz", "graviton", 2, 0.04535, _GRAV, storage="NVMe SSD"),
    _F("c7gn", _CO, _G3, "2.6 GHz", "graviton", 2, 0.0624, _GRAV),
    _F("c8g", _CO, _G4, "2.8 GHz", "graviton", 2, 0.03988, _GRAV48, metal=True),
    _F("r4", _MO, "Intel Xeon E5-2686 v4 (Broadwell)", "2.3 GHz", "intel", 7.625, 0.0665, _STD[:6]),
    _F("r5", _MO, _SKY, "3.1 GHz", "intel", 8, 0.063, _STD, metal=True),
    _F("r5a", _MO, _EPYC1, "2.5 GHz", "amd", 8, 0.0565, _STD),
    _F("r5b", _MO, _CAS, "3.1 GHz", "intel", 8, 0.0745, _STD, metal=True),
    _F("r5d", _MO, _SKY, "3.1 GHz", "intel", 8, 0.072, _STD, storage="NVMe SSD", metal=True),
    _F("r5n", _MO, _CAS, "3.1 GHz", "intel", 8, 0.0745, _STD, metal=True),
    _F("r6i", _MO, _ICE, "3.5 GHz", "intel", 8, 0.063, _BIG, metal=True),
    _F("r6id", _MO, _ICE, "3.5 GHz", "intel", 8, 0.0756, _BIG, storage="NVMe SSD"),
    _F("r6in", _MO, _ICE, "3.5 GHz", "intel", 8, 0.08715, _BIG),
    _F("r6a", _MO, _EPYC3, "3.6 GHz", "amd", 8, 0.0567, _BIG, metal=True),
    _F("r6g", _MO, _G2, "2.5 GHz", "graviton", 8, 0.0504, _GRAV, metal=True),
    _F("r6gd", _MO, _G2, "2.5 GHz", "graviton", 8, 0.0576, _GRAV, storage="NVMe SSD"),
    _F("r7i", _MO, _SPR, "3.2 GHz", "intel", 8, 0.06615, _BIG, metal=True),
    _F("r7iz", _MO, _SPR, "3.9 GHz", "intel", 8, 0.0930, _FLEX[:7], metal=True),
    _F("r7a", _MO, _EPYC4, "3.7 GHz", "amd", 8, 0.07608, _BIG, metal=True),
    _F("r7g", _MO, _G3, "2.6 GHz", "graviton", 8, 0.05355, _GRAV, metal=True),
    _F("r7gd", _MO, _G3, "2.6 GHz", "graviton", 8, 0.068, _GRAV, storage="NVMe SSD"),
    _F("r8g", _MO, _G4, "2.8 GHz", "graviton", 8, 0.05891, _GRAV48, metal=True),
    _F("x1", _MO, "High Frequency Intel Xeon E7-8880 v3", "2.3 GHz", "intel", 15.25, 0.1042,
       ("16xlarge", "32xlarge")),
    _F("x1e", _MO, "High Frequency Intel Xeon E7-8880 v3", "2.3 GHz", "intel", 30.5, 0.209,
       ("xlarge", "2xlarge", "4xlarge", "8xlarge", "16xlarge", "32xlarge")),
    _F("x2idn", _MO, _ICE, "3.5 GHz", "intel", 16, 0.1042, ("16xlarge", "24xlarge", "32xlarge"),
       metal=True),
    _F("x2iedn", _MO, _ICE, "3.5 GHz", "intel", 32, 0.20838, (*_BIG[1:3], "4xlarge", "8xlarge",
       "16xlarge", "24xlarge", "32xlarge"), storage="NVMe SSD", metal=True),
    _F("x2iezn", _MO, "Intel Xeon Platinum 8252", "4.5 GHz", "intel", 32, 0.2085,
       ("2xlarge", "4xlarge", "6xlarge", "8xlarge", "12xlarge"), metal=True),
    _F("z1d", _MO, "Intel Xeon Platinum 8151", "4.0 GHz", "intel", 8, 0.093, _STD[:6],
       storage="NVMe SSD", metal=True),
    _F("d2", _SO, "Intel Xeon E5-2676 v3 (Haswell)", "2.4 GHz", "intel", 7.625, 0.1725,
       ("xlarge", "2xlarge", "4xlarge", "8xlarge"), False, storage="HDD"),
    _F("d3", _SO, "Intel Xeon Platinum 8259 (Cascade Lake)", "3.1 GHz", "intel", 8, 0.1248,
       ("xlarge", "2xlarge", "4xlarge", "8xlarge"), storage="HDD"),
    _F("d3en", _SO, _CAS, "3.1 GHz", "intel", 4, 0.1315, ("xlarge", "2xlarge", "4xlarge",
       "6xlarge", "8xlarge", "12xlarge"), storage="HDD"),
    _F("h1", _SO, "Intel Xeon E5-2686 v4 (Broadwell)", "2.3 GHz", "intel", 4, 0.0585,
       ("2xlarge", "4xlarge", "8xlarge", "16xlarge"), storage="HDD"),
    _F("i3", _SO, "Intel Xeon E5-2686 v4 (Broadwell)", "2.3 GHz", "intel", 7.625, 0.078,
       _STD[:7], storage="NVMe SSD", metal=True),
    _F("i3en", _SO, _SKY, "3.1 GHz", "intel", 8, 0.113, _STD, storage="NVMe SSD", metal=True),
    _F("i4i", _SO, _ICE, "3.5 GHz", "intel", 8, 0.0858, (*_BIG[:8], "32xlarge"),
       storage="NVMe SSD", metal=True),
    _F("i4g", _SO, _G2, "2.5 GHz", "graviton", 8, 0.0772, (*_STD[:5], "16xlarge"),
       storage="NVMe SSD"),
    _F("im4gn", _SO, _G2, "2.5 GHz", "graviton", 4, 0.0909, (*_STD[:5], "16xlarge"),
       storage="NVMe SSD"),
    _F("is4gen", _SO, _G2, "2.5 GHz", "graviton", 6, 0.1152, ("medium", *_STD[:5]),
       storage="NVMe SSD"),
    _F("g4dn", _AC, _CAS, "2.5 GHz", "intel", 4, 0.1315, ("xlarge", "2xlarge", "4xlarge",
       "8xlarge", "12xlarge", "16xlarge"), storage="NVMe SSD", metal=True,
       gpu_memory_gb=16),
    _F("g5", _AC, "AMD EPYC 7R32", "3.3 GHz", "amd", 4, 0.2515, ("xlarge", "2xlarge",
       "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge", "48xlarge"),
       storage="NVMe SSD", gpu_memory_gb=24),
    _F("g6", _AC, "AMD EPYC 7R13 Processor", "3.6 GHz", "amd", 4, 0.2011, ("xlarge", "2xlarge",
       "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge", "48xlarge"),
       storage="NVMe SSD", gpu_memory_gb=24),
    _F("g5g", _AC, _G2, "2.5 GHz", "graviton", 2, 0.105, ("xlarge", "2xlarge", "4xlarge",
       "8xlarge", "16xlarge"), gpu_memory_gb=16),
    _F("p3", _AC, "Intel Xeon E5-2686 v4 (Broadwell)", "2.3 GHz", "intel", 7.625, 0.3825,
       ("2xlarge", "8xlarge", "16xlarge"), gpu_memory_gb=16),
    _F("p4d", _AC, _CAS, "3.0 GHz", "intel", 12, 0.3414, ("24xlarge",), storage="NVMe SSD",
       gpu_memory_gb=40),
    _F("p5", _AC, "AMD EPYC 7R13 Processor", "3.6 GHz", "amd", 10.67, 1.0241, ("48xlarge",),
       storage="NVMe SSD", gpu_memory_gb=80),
    _F("inf2", "Machine Learning ASIC Instances", _EPYC3, "3.6 GHz", "amd", 4, 0.1895,
       ("xlarge", "8xlarge", "24xlarge", "48xlarge")),
    _F("trn1", "Machine Learning ASIC Instances", _ICE, "3.5 GHz", "intel", 4, 0.168,
       ("2xlarge", "32xlarge"), storage="NVMe SSD"),
    # More current families, then the previous generations real files still list.
    _F("m5ad", _GP, _EPYC1, "2.2 GHz", "amd", 4, 0.0515, _STD, storage="NVMe SSD"),
    _F("m5dn", _GP, _CAS, "3.1 GHz", "intel", 4, 0.068, _STD, storage="NVMe SSD", metal=True),
    _F("m6idn", _GP, _ICE, "3.5 GHz", "intel", 4, 0.0795, _BIG, storage="NVMe SSD", metal=True),
    _F("c5ad", _CO, "AMD EPYC 7R32", "3.3 GHz", "amd", 2, 0.043, _C5, storage="NVMe SSD"),
    _F("r5ad", _MO, _EPYC1, "2.2 GHz", "amd", 8, 0.0655, _STD, storage="NVMe SSD"),
    _F("r5dn", _MO, _CAS, "3.1 GHz", "intel", 8, 0.0835, _STD, storage="NVMe SSD", metal=True),
    _F("r6idn", _MO, _ICE, "3.5 GHz", "intel", 8, 0.0977, _BIG, storage="NVMe SSD", metal=True),
    _F("x2gd", _MO, _G2, "2.5 GHz", "graviton", 16, 0.0835, _GRAV, storage="NVMe SSD",
       metal=True),
    _F("x8g", _MO, _G4, "2.8 GHz", "graviton", 16, 0.0977, _GRAV48, metal=True),
    _F("i7ie", _SO, "Intel Xeon Scalable (Emerald Rapids)", "3.2 GHz", "intel", 8, 0.1303, _BIG,
       storage="NVMe SSD", metal=True),
    _F("i8g", _SO, _G4, "2.8 GHz", "graviton", 8, 0.0858, _GRAV48, storage="NVMe SSD",
       metal=True),
    _F("g4ad", _AC, "AMD EPYC 7R32", "3.3 GHz", "amd", 4, 0.0946, ("xlarge", "2xlarge",
       "4xlarge", "8xlarge", "16xlarge"), storage="NVMe SSD", gpu_memory_gb=8),
    _F("g6e", _AC, "AMD EPYC 7R13 Processor", "3.6 GHz", "amd", 8, 0.4651, ("xlarge", "2xlarge",
       "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge", "48xlarge"),
       storage="NVMe SSD", gpu_memory_gb=48),
    _F("gr6", _AC, "AMD EPYC 7R13 Processor", "3.6 GHz", "amd", 8, 0.2807, ("4xlarge", "8xlarge"),
       storage="NVMe SSD", gpu_memory_gb=24),
    _F("p4de", _AC, _CAS, "3.0 GHz", "intel", 12, 0.4268, ("24xlarge",), storage="NVMe SSD",
       gpu_memory_gb=80),
    _F("p5e", _AC, "AMD EPYC 7R13 Processor", "3.6 GHz", "amd", 10.67, 1.1, ("48xlarge",),
       storage="NVMe SSD", gpu_memory_gb=141),
    _F("inf1", "Machine Learning ASIC Instances", _CAS, "2.5 GHz", "intel", 2, 0.057,
       ("xlarge", "2xlarge", "6xlarge", "24xlarge")),
    _F("trn1n", "Machine Learning ASIC Instances", _ICE, "3.5 GHz", "intel", 4, 0.2053,
       ("32xlarge",), storage="NVMe SSD"),
    _F("dl1", "Machine Learning ASIC Instances", _CAS, "3.0 GHz", "intel", 8, 0.1366,
       ("24xlarge",), storage="NVMe SSD"),
    _F("vt1", "Media Accelerator Instances", _CAS, "2.5 GHz", "intel", 2, 0.052,
       ("3xlarge", "6xlarge", "24xlarge")),
    _F("f1", "FPGA Instances", "Intel Xeon E5-2686 v4 (Broadwell)", "2.3 GHz", "intel", 15.25,
       0.2063, ("2xlarge", "4xlarge", "16xlarge"), storage="NVMe SSD"),
    _F("hpc6a", _CO, "AMD EPYC 7R13 Processor", "3.6 GHz", "amd", 4, 0.015, ("48xlarge",)),
    _F("hpc6id", _MO, _ICE, "3.5 GHz", "intel", 16, 0.0887, ("32xlarge",), storage="NVMe SSD"),
    _F("hpc7a", _CO, _EPYC4, "3.7 GHz", "amd", 4, 0.0376, ("12xlarge", "24xlarge", "48xlarge",
       "96xlarge")),
    _F("hpc7g", _CO, _G3, "2.6 GHz", "graviton", 2, 0.0265, ("4xlarge", "8xlarge", "16xlarge")),
    _F("a1", _GP, "AWS Graviton Processor", "2.3 GHz", "graviton", 2, 0.0255, _GRAV[:6], False,
       metal=True),
    _F("t1", _GP, "Intel Xeon Family", "Variable", "intel", 0.6, 0.02, ("micro",), False),
    _F("m1", _GP, "Intel Xeon Family", "Variable", "intel", 3.75, 0.044, ("small", "medium",
       "large", "xlarge"), False, storage="HDD"),
    _F("m2", _MO, "Intel Xeon Family", "Variable", "intel", 8.55, 0.0613, ("xlarge", "2xlarge",
       "4xlarge"), False, storage="HDD"),
    _F("m3", _GP, "Intel Xeon E5-2670 v2 (Ivy Bridge/Sandy Bridge)", "2.5 GHz", "intel", 3.75,
       0.067, ("medium", "large", "xlarge", "2xlarge"), False, storage="NVMe SSD"),
    _F("c1", _CO, "Intel Xeon Family", "Variable", "intel", 0.875, 0.065, ("medium", "xlarge"),
       False, storage="HDD"),
    _F("c3", _CO, "Intel Xeon E5-2680 v2 (Ivy Bridge)", "2.8 GHz", "intel", 1.875, 0.0525,
       ("large", "xlarge", "2xlarge", "4xlarge", "8xlarge"), False, storage="NVMe SSD"),
    _F("r3", _MO, "Intel Xeon E5-2670 v2 (Ivy Bridge)", "2.5 GHz", "intel", 7.625, 0.0833,
       ("large", "xlarge", "2xlarge", "4xlarge", "8xlarge"), False, storage="NVMe SSD"),
    _F("i2", _SO, "Intel Xeon E5-2670 v2 (Ivy Bridge)", "2.5 GHz", "intel", 7.625, 0.2131,
       ("xlarge", "2xlarge", "4xlarge", "8xlarge"), False, storage="NVMe SSD"),
    _F("g2", _AC, "Intel Xeon E5-2670 (Sandy Bridge)", "2.6 GHz", "intel", 1.875, 0.0813,
       ("2xlarge", "8xlarge"), False, storage="NVMe SSD", gpu_memory_gb=4),
    _F("g3", _AC, "Intel Xeon E5-2686 v4 (Broadwell)", "2.3 GHz", "intel", 7.625, 0.0713,
       ("4xlarge", "8xlarge", "16xlarge"), False, gpu_memory_gb=8),
    _F("p2", _AC, "Intel Xeon E5-2686 v4 (Broadwell)", "2.3 GHz", "intel", 15.25, 0.225,
       ("xlarge", "8xlarge", "16xlarge"), False, gpu_memory_gb=12),
    _F("cc2", _CO, "Intel Xeon E5-2670", "2.6 GHz", "intel", 1.875, 0.0625, ("8xlarge",),
       False, storage="HDD"),
    _F("cr1", _MO, "Intel Xeon E5-2670", "2.6 GHz", "intel", 7.625, 0.1094, ("8xlarge",),
       False, storage="NVMe SSD"),
    _F("hs1", _SO, "Intel Xeon E5-2650", "2.0 GHz", "intel", 7.47, 0.1438, ("8xlarge",),
       False, storage="HDD"),
)
# fmt: on
# Named and sized per region (REGION_ONLY_TYPES); memory comes from the name (u7in-32tb).
_REGION_ONLY_FAMILY = _Family("u7in", _MO, _SPR, "2.9 GHz", "intel", 0, 0.4543, ())

# (operatingSystem, licenseModel, preInstalledSw, operation, on-demand label, reserved label)
# fmt: off
_PLATFORMS: tuple[tuple[str, str, str, str, str, str], ...] = (
    ("Linux", "No License required", "NA", "RunInstances", "Linux", "Linux/UNIX"),
    ("Linux", "No License required", "SQL Web", "RunInstances:0200", "Linux with SQL Web",
     "Linux with SQL Server Web"),
    ("Linux", "No License required", "SQL Std", "RunInstances:0004", "Linux with SQL Std",
     "Linux with SQL Server Standard"),
    ("Linux", "No License required", "SQL Ent", "RunInstances:0100", "Linux with SQL Ent",
     "Linux with SQL Server Enterprise"),
    ("Windows", "No License required", "NA", "RunInstances:0002", "Windows", "Windows"),
    ("Windows", "Bring your own license", "NA", "RunInstances:0800", "Windows BYOL",
     "Windows BYOL"),
    ("Windows", "No License required", "SQL Web", "RunInstances:0202", "Windows with SQL Web",
     "Windows with SQL Server Web"),
    ("Windows", "No License required", "SQL Std", "RunInstances:0006", "Windows with SQL Std",
     "Windows with SQL Server Standard"),
    ("Windows", "No License required", "SQL Ent", "RunInstances:0102", "Windows with SQL Ent",
     "Windows with SQL Server Enterprise"),
    ("RHEL", "No License required", "NA", "RunInstances:0010", "RHEL",
     "Red Hat Enterprise Linux"),
    ("RHEL", "No License required", "SQL Web", "RunInstances:0210", "RHEL with SQL Web",
     "Red Hat Enterprise Linux with SQL Server Web"),
    ("RHEL", "No License required", "SQL Std", "RunInstances:0014", "RHEL with SQL Std",
     "Red Hat Enterprise Linux with SQL Server Standard"),
    ("RHEL", "No License required", "SQL Ent", "RunInstances:0110", "RHEL with SQL Ent",
     "Red Hat Enterprise Linux with SQL Server Enterprise"),
    ("Red Hat Enterprise Linux with HA", "No License required", "NA", "RunInstances:1010",
     "RHEL with HA", "Red Hat Enterprise Linux with HA"),
    ("Red Hat Enterprise Linux with HA", "No License required", "SQL Std", "RunInstances:1014",
     "RHEL with HA and SQL Std", "Red Hat Enterprise Linux with HA with SQL Server Standard"),
    ("Red Hat Enterprise Linux with HA", "No License required", "SQL Ent", "RunInstances:1110",
     "RHEL with HA and SQL Ent", "Red Hat Enterprise Linux with HA with SQL Server Enterprise"),
    ("SUSE", "No License required", "NA", "RunInstances:000g", "SUSE", "SUSE Linux"),
    ("Ubuntu Pro", "No License required", "NA", "RunInstances:0g00", "Ubuntu Pro",
     "Ubuntu Pro Linux"),
)
# fmt: on
# Graviton and the region-only high-memory type run no Windows and no SQL Server.
_LINUX_ONLY = tuple(i for i, p in enumerate(_PLATFORMS) if p[0] != "Windows" and p[2] == "NA")
_ALL_PLATFORMS = tuple(range(len(_PLATFORMS)))
_CAPACITY = {
    "Shared": ("Used", "UnusedCapacityReservation", "AllocatedCapacityReservation"),
    "Dedicated": ("Used", "UnusedCapacityReservation", "AllocatedCapacityReservation"),
    "Host": ("Used",),
}
_USAGE = {
    ("Shared", "Used"): "BoxUsage",
    ("Dedicated", "Used"): "DedicatedUsage",
    ("Host", "Used"): "HostBoxUsage",
    ("Shared", "UnusedCapacityReservation"): "UnusedBox",
    ("Dedicated", "UnusedCapacityReservation"): "UnusedDed",
    ("Shared", "AllocatedCapacityReservation"): "Reservation",
    ("Dedicated", "AllocatedCapacityReservation"): "DedicatedRes",
}
_RESERVED_FACTOR = {
    ("1yr", "standard"): 0.62,
    ("3yr", "standard"): 0.40,
    ("1yr", "convertible"): 0.71,
    ("3yr", "convertible"): 0.53,
}
_NSF = {"nano": 0.25, "micro": 0.5, "small": 1, "medium": 2, "large": 4, "xlarge": 8}
_RI_DATES = ("2023-11-01T00:00:00Z", "2024-03-01T00:00:00Z", "2024-08-01T00:00:00Z")
_SKU_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"

# The planted facts; the region-only type is added per region. Each key's Used product is taken
# out of the shuffled catalogue and written first, so a file of any size holds it.
_KNOWN_KEYS = (
    PriceKey("m5.large", "Linux", "Shared", "No License required", "NA"),
    PriceKey("c6g.xlarge", "Linux", "Dedicated", "No License required", "NA"),
    PriceKey("r7i.2xlarge", "Windows", "Shared", "No License required", "SQL Std"),
    PriceKey("t3.micro", "SUSE", "Shared", "No License required", "NA"),
    PriceKey("m6i.4xlarge", "Windows", "Dedicated", "Bring your own license", "NA"),
    PriceKey(
        "x2iedn.8xlarge",
        "Red Hat Enterprise Linux with HA",
        "Shared",
        "No License required",
        "SQL Ent",
    ),
    PriceKey("c5.2xlarge", "Ubuntu Pro", "Host", "No License required", "NA"),
)
_RESERVED_KEY = _KNOWN_KEYS[0]
_DUPLICATE_KEY = PriceKey("m6a.xlarge", "Linux", "Shared", "No License required", "NA")
_DUPLICATE_OPERATION = "RunInstances:SV001"


def _size_vcpu(fam: _Family, size: str) -> int:
    if fam.sizes is _BURST:
        if fam.name == "t2" and size in ("nano", "micro", "small"):
            return 1
        return 2 << max(0, _BURST.index(size) - 4)  # 2 up to large, then doubling
    if size in ("micro", "small", "medium", "large"):
        return 2 if size == "large" else 1
    if size == "xlarge":
        return 4
    return 4 * int(size.removesuffix("xlarge"))


def _nsf(size: str) -> str:
    """normalizationSizeFactor: 4 for large, 8 per xlarge."""
    if size in _NSF:
        return f"{_NSF[size]:g}"
    return str(8 * int(size.removesuffix("xlarge")))


def _usd(value: float) -> str:
    """A price as AWS writes it: 10 decimals, here rounded to 4 places (at least 0.0001)."""
    units = round(value * 10_000)
    if value > 0 and units == 0:
        units = 1
    return f"{units // 10_000}.{units % 10_000:04d}000000"


def _short(usd: str) -> str:
    """'0.0960000000' -> '0.096' (at least three decimals), as in descriptions."""
    whole, frac = usd.split(".")
    frac = frac.rstrip("0")
    return f"{whole}.{frac.ljust(3, '0')}"


def _upfront(value: float) -> str:
    return str(round(value)) if value >= 100 else f"{value:.2f}"


def _q(s: str) -> str:
    # Every string comes from this module's ASCII tables; escape only if one ever needs it.
    return json.dumps(s) if '"' in s or "\\" in s else f'"{s}"'


class _Style:
    """Jackson's DefaultPrettyPrinter as AWS uses it, or compact JSON."""

    def __init__(self, compact: bool) -> None:
        self.compact = compact
        self.colon = ":" if compact else " : "
        self.ind = ["" if compact else "\n" + "  " * level for level in range(12)]

    def dump(self, value: object, level: int) -> str:
        if isinstance(value, str):
            return _q(value)
        if isinstance(value, dict):
            if not value:
                return "{}" if self.compact else "{ }"
            pad = self.ind[level + 1]
            body = ",".join(
                f"{pad}{_q(k)}{self.colon}{self.dump(v, level + 1)}" for k, v in value.items()
            )
            return "{" + body + self.ind[level] + "}"
        if isinstance(value, list):
            if self.compact:
                return "[" + ",".join(self.dump(v, level) for v in value) + "]"
            return "[ " + ", ".join(self.dump(v, level) for v in value) + " ]" if value else "[ ]"
        raise TypeError(type(value))

    def entry(self, key: str, value: object, level: int) -> str:
        return f"{self.ind[level]}{_q(key)}{self.colon}{self.dump(value, level)}"


def _term(sku: str, code: str, eff: str, dims: _Json, attrs: _Json) -> _Json:
    return {
        "offerTermCode": code,
        "sku": sku,
        "effectiveDate": eff,
        "priceDimensions": dims,
        "termAttributes": attrs,
    }


def _dim(rate: str, desc: str, unit: str, usd: str, begin: str = "0", end: str = "Inf") -> _Json:
    return {
        "rateCode": rate,
        "description": desc,
        "beginRange": begin,
        "endRange": end,
        "unit": unit,
        "pricePerUnit": {"USD": usd},
        "appliesTo": [],
    }


class _Templates:
    """%-format templates of the term blocks, rendered once by the same printer as the rest so
    both styles stay byte-identical to a generic dump, and fast (the terms are most of the file).
    """

    def __init__(self, style: _Style) -> None:
        s, p = style, "%(sku)s"
        od = {
            f"{p}.{ON_DEMAND_TERM}": _term(
                p,
                ON_DEMAND_TERM,
                "%(eff)s",
                {
                    f"{p}.{ON_DEMAND_TERM}.{HOURLY_RATE}": _dim(
                        f"{p}.{ON_DEMAND_TERM}.{HOURLY_RATE}", "%(desc)s", "Hrs", "%(usd)s"
                    )
                },
                {},
            )
        }
        self.on_demand = s.entry(p, od, 3)
        ri_attrs = {
            "LeaseContractLength": "%(lease)s",
            "OfferingClass": "%(cls)s",
            "PurchaseOption": "%(option)s",
        }
        hourly = _dim(f"{p}.%(code)s.{HOURLY_RATE}", "%(desc)s", "Hrs", "%(usd)s")
        upfront = {
            "rateCode": f"{p}.%(code)s.{UPFRONT_RATE}",
            "description": "Upfront Fee",
            "unit": "Quantity",
            "pricePerUnit": {"USD": "%(fee)s"},
            "appliesTo": [],
        }
        self.reserved = s.entry(
            f"{p}.%(code)s",
            _term(p, "%(code)s", "%(eff)s", {f"{p}.%(code)s.{HOURLY_RATE}": hourly}, ri_attrs),
            4,
        )
        self.reserved_upfront = s.entry(
            f"{p}.%(code)s",
            _term(
                p,
                "%(code)s",
                "%(eff)s",
                {f"{p}.%(code)s.{UPFRONT_RATE}": upfront, f"{p}.%(code)s.{HOURLY_RATE}": hourly},
                ri_attrs,
            ),
            4,
        )
        self.sku_open = s.ind[3] + '"%s"' + s.colon + "{"
        self.sku_close = s.ind[3] + "}"


@dataclass
class _Product:
    sku: str
    family: str
    attrs: dict[str, str]
    # on-demand: either one hourly price (with its description) or explicit dimensions
    usd: str = ""
    desc: str = ""
    dims: _Json | None = None
    reserved: list[dict[str, str]] | None = None  # template fills for the reserved terms
    key: PriceKey | None = None


class _Catalogue:
    def __init__(self, region: str, version: str) -> None:
        if region not in REGIONS:
            raise ValueError(f"unknown region {region!r}; known: {', '.join(REGIONS)}")
        self.region = region
        self.location, self.prefix, self.factor = REGIONS[region]
        self.od_date = f"{version[:4]}-{version[4:6]}-01T00:00:00Z"
        self.region_only_type = (
            REGION_ONLY_TYPES.get(region)
            or _REGION_ONLY_FALLBACKS[zlib.crc32(region.encode()) % len(_REGION_ONLY_FALLBACKS)]
        )
        ro_fam, ro_size = self.region_only_type.split(".")
        self.families = (*FAMILIES, _REGION_ONLY_FAMILY._replace(name=ro_fam, sizes=(ro_size,)))
        self.by_type: dict[str, tuple[int, str]] = {}
        for fi, fam in enumerate(self.families):
            for size in (*fam.sizes, *(("metal",) if fam.metal else ())):
                self.by_type[f"{fam.name}.{size}"] = (fi, size)

    def sku(self, identity: str) -> str:
        digest = hashlib.blake2b(f"{self.region}|{identity}".encode(), digest_size=11).digest()
        n, out = int.from_bytes(digest, "big"), []
        for _ in range(16):
            n, r = divmod(n, 36)
            out.append(_SKU_ALPHABET[r])
        return "".join(out)

    # -- instances

    def platforms(self, fam: _Family) -> tuple[int, ...]:
        x86 = fam.cpu != "graviton" and not fam.name.startswith("u")
        return _ALL_PLATFORMS if x86 else _LINUX_ONLY

    def tenancies(self, fam: _Family) -> tuple[str, ...]:
        if fam.sizes is _BURST or fam.name.endswith("-flex"):
            return ("Shared",)
        return ("Shared", "Dedicated", "Host")

    def instances(self) -> Iterator[_Slot]:
        for fi, fam in enumerate(self.families):
            for size in (*fam.sizes, *(("metal",) if fam.metal else ())):
                for pi in self.platforms(fam):
                    for tenancy in self.tenancies(fam):
                        for cap in _CAPACITY[tenancy]:
                            yield fi, size, pi, tenancy, cap

    def linux_usd(self, fam: _Family, size: str, vcpu: int) -> float:
        if fam.sizes is _BURST:
            return fam.usd_per_vcpu * 2.0 ** _BURST.index(size) * self.factor
        return fam.usd_per_vcpu * vcpu * self.factor

    def instance(
        self,
        fi: int,
        size: str,
        pi: int,
        tenancy: str,
        cap: str,
        rng: random.Random,
        operation: str = "",
        bump: float = 1.0,
        reserved: bool | None = None,
    ) -> _Product:
        """One instance product; `reserved` None draws whether it has reserved terms."""
        fam = self.families[fi]
        os_, lic, sw, op, od_label, ri_label = _PLATFORMS[pi]
        operation = operation or op
        metal = size == "metal"
        vcpu = _size_vcpu(fam, fam.sizes[-1] if metal else size)
        itype = f"{fam.name}.{size}"
        sku = self.sku(f"{itype}|{pi}|{tenancy}|{cap}|{operation}")
        mem = vcpu * fam.mem_per_vcpu
        if fam.sizes is _BURST:
            mem = 0.5 * 2 ** _BURST.index(size)
        elif fam.name.startswith("u"):  # high memory: u7in-32tb, u-24tb1
            mem = 1024 * int(fam.name.split("-")[1].split("tb")[0])
        intel = fam.cpu == "intel"
        a: dict[str, str] = {
            "servicecode": "AmazonEC2",
            "location": self.location,
            "locationType": "AWS Region",
            "instanceType": itype,
            "currentGeneration": "Yes" if fam.current else "No",
            "instanceFamily": fam.category,
            "vcpu": str(vcpu),
            "physicalProcessor": fam.processor,
            "clockSpeed": fam.clock,
            "memory": f"{mem:,g} GiB",
            "storage": _storage(fam, vcpu),
            "networkPerformance": _network(fam, vcpu),
            "processorArchitecture": "64-bit",
            "tenancy": tenancy,
            "operatingSystem": os_,
            "licenseModel": lic,
            "usagetype": f"{self.prefix}{_USAGE[tenancy, cap]}:{itype}",
            "operation": operation,
            "availabilityzone": "NA",
            "capacitystatus": cap,
            "classicnetworkingsupport": "true" if fam.name in ("m4", "c4", "r4", "t2") else "false",
            "dedicatedEbsThroughput": _ebs(vcpu),
            "ecu": _ecu(fam, vcpu),
            "enhancedNetworkingSupported": "Yes",
        }
        if fam.gpu_memory_gb:
            gpus = max(1, vcpu // 12)
            a["gpu"] = str(gpus)
            a["gpuMemory"] = f"{gpus * fam.gpu_memory_gb} GB"
        else:
            a["gpuMemory"] = "NA"
        if cap != "Used":
            a["instancesku"] = self.sku(f"{itype}|{pi}|{tenancy}|Used|{op}")
        a["intelAvx2Available"] = "Yes" if intel else "No"
        a["intelAvxAvailable"] = "Yes" if intel else "No"
        a["intelTurboAvailable"] = "Yes" if intel else "No"
        a["marketoption"] = "OnDemand"
        a["normalizationSizeFactor"] = _nsf(fam.sizes[-1] if metal else size)
        a["preInstalledSw"] = sw
        a["processorFeatures"] = _features(fam)
        a["regionCode"] = self.region
        a["servicename"] = SERVICE_NAME
        a["vpcnetworkingsupport"] = "true"

        # Price: Linux base + OS and SQL Server licence, Dedicated +10 %, Host billed per host.
        base = self.linux_usd(fam, size if not metal else fam.sizes[-1], vcpu)
        usd = base + _platform_adder(os_, lic, sw, vcpu, base, fam.sizes is _BURST)
        usd *= {"Shared": 1.0, "Dedicated": 1.1, "Host": 0.0}[tenancy] * bump
        used_usd = _usd(usd)
        od_usd = "0.0000000000" if cap == "AllocatedCapacityReservation" else used_usd
        where = {
            ("Shared", "Used"): f"On Demand {od_label} {itype} Instance Hour",
            ("Dedicated", "Used"): f"Dedicated Usage {od_label} {itype} Instance Hour",
            ("Host", "Used"): f"{od_label} {itype} Dedicated Host Instance hour",
        }.get((tenancy, cap))
        if where is None:
            kind = "Unused Reservation" if cap == "UnusedCapacityReservation" else "Reservation"
            where = f"{kind} {od_label} {itype} Instance Hour"
        product = _Product(
            sku,
            "Compute Instance (bare metal)" if metal else "Compute Instance",
            a,
            od_usd,
            f"${_short(od_usd)} per {where}",
            key=PriceKey(itype, os_, tenancy, lic, sw),
        )
        # Most Used Shared/Dedicated products have reserved terms: all 12 for current
        # generations, the 6 standard ones for previous generations (as old types have).
        if reserved is None:
            reserved = cap == "Used" and tenancy != "Host" and rng.random() < 0.92
        if reserved:
            ri_desc = f"{ri_label} (Amazon VPC), {itype} reserved instance applied"
            eff = _RI_DATES[zlib.crc32(fam.name.encode()) % len(_RI_DATES)]
            terms = []
            for code, lease, cls, option in RESERVED_TERMS:
                if cls == "convertible" and not fam.current:
                    continue
                terms.append(_reserved_fill(sku, code, lease, cls, option, usd, ri_desc, eff))
            product.reserved = terms
        return product

    # -- everything else in the EC2 offer

    def others(self) -> list[_Product]:
        loc, pfx, reg = self.location, self.prefix, self.region
        base = {"servicecode": "AmazonEC2", "location": loc, "locationType": "AWS Region"}
        tail = {"regionCode": reg, "servicename": SERVICE_NAME}
        out: list[_Product] = []

        def add(family: str, attrs: dict[str, str], unit: str, usd: float, desc: str) -> None:
            sku = self.sku(f"{family}|{attrs.get('usagetype')}|{attrs.get('operatingSystem')}")
            price = _usd(usd)
            dim = _dim(f"{sku}.{ON_DEMAND_TERM}.{HOURLY_RATE}", desc % _short(price), unit, price)
            out.append(_Product(sku, family, attrs, dims={dim["rateCode"]: dim}))

        volumes = (
            ("gp2", "SSD-backed", "General Purpose", "16 TiB", "16000", "250 MiB/s", 0.10),
            ("gp3", "SSD-backed", "General Purpose", "16 TiB", "16000", "1000 MiB/s", 0.08),
            ("io1", "SSD-backed", "Provisioned IOPS", "16 TiB", "64000", "1000 MiB/s", 0.125),
            ("io2", "SSD-backed", "Provisioned IOPS", "64 TiB", "256000", "4000 MiB/s", 0.125),
            ("st1", "HDD-backed", "Throughput Optimized HDD", "16 TiB", "500", "500 MiB/s", 0.045),
            ("sc1", "HDD-backed", "Cold HDD", "16 TiB", "250", "250 MiB/s", 0.015),
            ("standard", "HDD-backed", "Magnetic", "1 TiB", "40 - 200", "40 - 90 MB/sec", 0.05),
        )
        for api, media, vtype, size, iops, tput, usd in volumes:
            usage = "EBS:VolumeUsage" + ("" if api == "standard" else f".{api}")
            attrs = {
                **base,
                "storageMedia": media,
                "volumeType": vtype,
                "maxVolumeSize": size,
                "maxIopsvolume": iops,
                "maxThroughputvolume": tput,
                "usagetype": pfx + usage,
                "operation": "",
                **tail,
                "volumeApiName": api,
            }
            add(
                "Storage",
                attrs,
                "GB-Mo",
                usd * self.factor,
                f"$%s per GB-month of {vtype} ({api}) provisioned storage - {loc}",
            )
        for usage, usd in (("EBS:SnapshotUsage", 0.05), ("EBS:SnapshotArchiveStorage", 0.0125)):
            attrs = {
                **base,
                "storageMedia": "Amazon S3",
                "usagetype": pfx + usage,
                "operation": "CreateSnapshot",
                **tail,
            }
            add(
                "Storage Snapshot",
                attrs,
                "GB-Mo",
                usd * self.factor,
                f"$%s per GB-Month of snapshot data stored - {loc}",
            )
        for api, usage, group, unit, usd in (
            ("gp3", "EBS:VolumeP-IOPS.gp3", "EBS IOPS", "IOPS-Mo", 0.005),
            ("io1", "EBS:VolumeP-IOPS.piops", "EBS IOPS", "IOPS-Mo", 0.065),
            ("io2", "EBS:VolumeP-IOPS.io2", "EBS IOPS", "IOPS-Mo", 0.065),
            ("gp3", "EBS:VolumeP-Throughput.gp3", "EBS Throughput", "GiBps-mo", 40.96),
        ):
            attrs = {
                **base,
                "group": group,
                "groupDescription": f"{group} for {api}",
                "usagetype": pfx + usage,
                "operation": "",
                "provisioned": "Yes",
                **tail,
                "volumeApiName": api,
            }
            add(
                "System Operation",
                attrs,
                unit,
                usd * self.factor,
                f"$%s per {unit} of {api} provisioned - {loc}",
            )

        # Data transfer: servicecode AWSDataTransfer, to and from every other region and out.
        me = _dt_code(reg)
        dt = {"servicecode": "AWSDataTransfer"}
        for other, (oloc, _, _) in REGIONS.items():
            if other == reg:
                continue
            for kind, frm, to, usage, usd in (
                ("InterRegion Outbound", (loc, reg), (oloc, other), "Out", 0.02),
                ("InterRegion Inbound", (oloc, other), (loc, reg), "In", 0.0),
            ):
                attrs = {
                    **dt,
                    "transferType": kind,
                    "fromLocation": frm[0],
                    "fromLocationType": "AWS Region",
                    "toLocation": to[0],
                    "toLocationType": "AWS Region",
                    "usagetype": f"{me}-{_dt_code(other)}-AWS-{usage}-Bytes",
                    "operation": "",
                    "fromRegionCode": frm[1],
                    "toRegionCode": to[1],
                    "servicename": "AWS Data Transfer",
                }
                add(
                    "Data Transfer",
                    attrs,
                    "GB",
                    usd,
                    f"$%s per GB - {frm[0]} data transfer to {to[0]}",
                )
        attrs = {
            **dt,
            "transferType": "IntraRegion",
            "fromLocation": loc,
            "fromLocationType": "AWS Region",
            "toLocation": loc,
            "toLocationType": "AWS Region",
            "usagetype": f"{me}-DataTransfer-Regional-Bytes",
            "operation": "",
            "fromRegionCode": reg,
            "toRegionCode": reg,
            "servicename": "AWS Data Transfer",
        }
        add("Data Transfer", attrs, "GB", 0.01, f"$%s per GB - {loc} data transfer within region")
        # Out to the internet is tiered: several dimensions with ranges.
        attrs = {
            **dt,
            "transferType": "AWS Outbound",
            "fromLocation": loc,
            "fromLocationType": "AWS Region",
            "toLocation": "External",
            "toLocationType": "Other",
            "usagetype": f"{me}-DataTransfer-Out-Bytes",
            "operation": "",
            "fromRegionCode": reg,
            "servicename": "AWS Data Transfer",
        }
        sku = self.sku("Data Transfer|out")
        dims: _Json = {}
        for begin, end, usd in (
            ("0", "10240", 0.09),
            ("10240", "51200", 0.085),
            ("51200", "153600", 0.07),
            ("153600", "Inf", 0.05),
        ):
            rate = f"{sku}.{ON_DEMAND_TERM}.{self.sku('tier' + begin)[:10]}"
            price = _usd(usd * self.factor)
            desc = f"${_short(price)} per GB - {loc} data transfer to Internet"
            dims[rate] = _dim(rate, desc, "GB", price, begin, end)
        out.append(_Product(sku, "Data Transfer", attrs, dims=dims))

        for fam in self.families:
            if fam.sizes is _BURST or fam.name.endswith("-flex") or fam.name.startswith("u"):
                continue
            host_vcpu = _size_vcpu(fam, fam.sizes[-1]) * (2 if len(fam.sizes) < 3 else 1)
            attrs = {
                **base,
                "instanceType": fam.name,
                "currentGeneration": "Yes" if fam.current else "No",
                "instanceFamily": fam.category,
                "vcpu": str(host_vcpu),
                "physicalProcessor": fam.processor,
                "clockSpeed": fam.clock,
                "memory": "NA",
                "storage": "NA",
                "networkPerformance": "NA",
                "processorArchitecture": "64-bit",
                "tenancy": "Host",
                "operatingSystem": "Linux",
                "licenseModel": "No License required",
                "usagetype": f"{pfx}HostUsage:{fam.name}",
                "operation": "RunInstances",
                "availabilityzone": "NA",
                "capacitystatus": "AllocatedHost",
                "ecu": "NA",
            }
            for size in fam.sizes:
                if size not in ("nano", "micro", "small"):
                    cap_name = size[0].upper() + size[1:] if size[0].isalpha() else size
                    attrs[f"instanceCapacity{cap_name}"] = str(
                        max(1, host_vcpu // _size_vcpu(fam, size))
                    )
            attrs |= {
                "normalizationSizeFactor": "NA",
                "physicalCores": str(host_vcpu // 2),
                "preInstalledSw": "NA",
                "processorFeatures": _features(fam),
                **tail,
            }
            add(
                "Dedicated Host",
                attrs,
                "Hrs",
                fam.usd_per_vcpu * host_vcpu * 1.1 * self.factor,
                f"$%s per {fam.name} Dedicated Host Instance hour",
            )

        for usage, desc, unit, usd in (
            ("NatGateway-Hours", "Hourly charge for NAT Gateways", "Hrs", 0.045),
            ("NatGateway-Bytes", "Charge for per GB data processed by NAT Gateways", "GB", 0.045),
        ):
            attrs = {
                **base,
                "group": "NGW:NatGateway",
                "groupDescription": desc,
                "usagetype": pfx + usage,
                "operation": "NatGateway",
                **tail,
            }
            add("NAT Gateway", attrs, unit, usd * self.factor, f"$%s per {unit} - {desc}")
        for group, gdesc, usage, op, usd in (
            (
                "ElasticIP:Address",
                "Idle Elastic IP address",
                "ElasticIP:IdleAddress",
                "AssociateAddressVPC",
                0.005,
            ),
            (
                "ElasticIP:Address",
                "Additional Elastic IP address",
                "ElasticIP:AdditionalAddress",
                "AssociateAddressVPC",
                0.005,
            ),
            ("ElasticIP:Remap", "Elastic IP address remap", "ElasticIP:Remap", "", 0.10),
            (
                "VPCPublicIPv4Address",
                "Hourly charge for In-use Public IPv4 Addresses",
                "PublicIPv4:InUseAddress",
                "",
                0.005,
            ),
            (
                "VPCPublicIPv4Address",
                "Hourly charge for Idle Public IPv4 Addresses",
                "PublicIPv4:IdleAddress",
                "",
                0.005,
            ),
        ):
            attrs = {
                **base,
                "group": group,
                "groupDescription": gdesc,
                "usagetype": pfx + usage,
                "operation": op,
                **tail,
            }
            unit = "Count" if "Remap" in usage else "Hrs"
            add("IP Address", attrs, unit, usd, f"$%s per {gdesc} per {unit}")
        for fam in self.families:
            if fam.sizes is not _BURST:
                continue
            for os_, op in (
                ("Linux", ""),
                ("Windows", "RunInstances:0002"),
                ("RHEL", "RunInstances:0010"),
                ("SUSE", "RunInstances:000g"),
            ):
                if fam.cpu == "graviton" and os_ == "Windows":
                    continue
                attrs = {
                    **base,
                    "operatingSystem": os_,
                    "usagetype": f"{pfx}CPUCredits:{fam.name}",
                    "operation": op,
                    **tail,
                }
                add(
                    "CPU Credits",
                    attrs,
                    "vCPU-Hours",
                    0.05 if os_ != "Windows" else 0.096,
                    f"$%s per vCPU-Hour of {fam.name} {os_} CPU Credits",
                )
        return out


def _dt_code(region: str) -> str:
    return REGIONS[region][1].rstrip("-") or "USE1"


def _storage(fam: _Family, vcpu: int) -> str:
    if not fam.storage:
        return "EBS only"
    per_disk = {"HDD": 2000, "NVMe SSD": 75}[fam.storage] * max(1, vcpu // 4)
    disks = 1 if vcpu <= 16 else min(8, vcpu // 16)
    return f"{disks} x {per_disk // disks} {fam.storage}"


def _network(fam: _Family, vcpu: int) -> str:
    scale = 2 if fam.name.endswith("n") or fam.name.endswith("in") else 1
    if vcpu <= 16:
        return f"Up to {12.5 * scale:g} Gigabit"
    for limit, gbit in ((32, 12.5), (64, 25), (96, 37.5)):
        if vcpu <= limit:
            return f"{gbit * scale:g} Gigabit"
    return f"{50 * scale:g} Gigabit"


def _ebs(vcpu: int) -> str:
    if vcpu <= 8:
        return "Up to 10000 Mbps"
    return f"{min(40000, 10000 * max(1, vcpu // 32))} Mbps"


def _ecu(fam: _Family, vcpu: int) -> str:
    if fam.sizes is _BURST:
        return "Variable"
    if fam.cpu == "graviton" or fam.name[1:2] in ("7", "8"):
        return "NA"
    return str(round(vcpu * 3.5))


_NO_AVX512 = frozenset(("m4", "c4", "r4", "t2", "d2", "h1", "i3", "x1", "x1e", "p3"))


def _features(fam: _Family) -> str:
    if fam.cpu == "intel":
        if fam.name in _NO_AVX512:
            return "Intel AVX; Intel AVX2; Intel Turbo"
        return "Intel AVX; Intel AVX2; Intel AVX512; Intel Turbo"
    if fam.cpu == "amd":
        return "AMD Turbo; AVX; AVX2"
    return "NA"


def _platform_adder(os_: str, lic: str, sw: str, vcpu: int, base: float, burst: bool) -> float:
    add = 0.0
    if os_ == "Windows" and lic == "No License required":
        add += base * 0.9 if burst else 0.046 * vcpu
    elif os_ == "RHEL":
        add += max(0.0288, 0.0144 * vcpu)
    elif os_ == "Red Hat Enterprise Linux with HA":
        add += max(0.0288, 0.0144 * vcpu) + 0.021 * vcpu
    elif os_ == "SUSE":
        add += max(0.025, 0.0078 * vcpu)
    elif os_ == "Ubuntu Pro":
        add += 0.0035 * vcpu
    sql_vcpu = max(4, vcpu)  # SQL Server is licensed for 4 cores at least
    add += {"NA": 0.0, "SQL Web": 0.017, "SQL Std": 0.122, "SQL Ent": 0.375}[sw] * sql_vcpu
    return add


def _reserved_fill(
    sku: str, code: str, lease: str, cls: str, option: str, od: float, desc: str, eff: str
) -> dict[str, str]:
    effective = od * _RESERVED_FACTOR[lease, cls]
    hours = 8760 if lease == "1yr" else 26280
    fill = {"sku": sku, "code": code, "eff": eff, "lease": lease, "cls": cls, "option": option}
    if option == "No Upfront":
        return fill | {"usd": _usd(effective), "desc": desc}
    if option == "Partial Upfront":
        half = effective * 0.95 * 0.5
        return fill | {"usd": _usd(half), "desc": desc, "fee": _upfront(half * hours)}
    return fill | {
        "usd": "0.0000000000",
        "desc": f"USD 0.0 per {desc}",
        "fee": _upfront(effective * 0.93 * hours),
    }


# -- writing ---------------------------------------------------------------------------------


class _Sink:
    """A text file written in big joined chunks, counting the characters (ASCII, so bytes)."""

    def __init__(self, f: IO[str]) -> None:
        self.f, self.pending, self.size, self.first = f, 0, 0, True
        self.buf: list[str] = []

    def add(self, text: str) -> None:
        self.buf.append(text)
        self.pending += len(text)
        if self.pending > 1 << 22:
            self.flush()

    def item(self, text: str) -> None:
        """One member of a JSON object: a comma before all but the first."""
        self.add(text if self.first else "," + text)
        self.first = False

    def flush(self) -> None:
        self.f.write("".join(self.buf))
        self.size += self.pending
        self.buf, self.pending = [], 0


def write_offer_file(
    path: Path,
    min_bytes: int,
    *,
    region: str = "us-east-1",
    version: str = "20261101000000",
    compact: bool = False,
) -> OfferFacts:
    """Write an AmazonEC2 regional offer file of at least `min_bytes` to `path`.

    Raises ValueError for an unknown region, or when the catalogue runs out before `min_bytes`
    (the whole catalogue makes about 480 MB pretty-printed, 310 MB compact).
    """
    path = Path(path)
    if len(version) != 14 or not version.isdigit():
        raise ValueError(f"version must be YYYYMMDDHHMMSS, not {version!r}")
    cat = _Catalogue(region, version)
    style = _Style(compact)
    tpl = _Templates(style)
    ind, colon = style.ind, style.colon
    rng = random.Random(zlib.crc32(f"kopter-offer|{region}".encode()))
    facts = OfferFacts(path, region, version, compact)
    facts.region_only_instance_type = cat.region_only_type
    families: Counter[str] = Counter()
    keys: set[PriceKey] = set()
    types: set[str] = set()
    attr_values: dict[str, set[str]] = {}

    # Planted products first (interleaved with one of each non-compute family), then the rest
    # of the catalogue shuffled.
    known = (
        *_KNOWN_KEYS,
        PriceKey(cat.region_only_type, "Linux", "Shared", "No License required", "NA"),
    )
    planted_keys = {*known, _DUPLICATE_KEY}
    plat_index = {(p[0], p[1], p[2]): i for i, p in enumerate(_PLATFORMS)}

    def used(
        key: PriceKey, operation: str = "", bump: float = 1.0, reserved: bool | None = None
    ) -> _Product:
        fi, size = cat.by_type[key.instance_type]
        pi = plat_index[key.operating_system, key.license_model, key.pre_installed_sw]
        return cat.instance(fi, size, pi, key.tenancy, "Used", rng, operation, bump, reserved)

    def catalogue() -> tuple[list[_Product], list[_Product | _Slot]]:
        """The planted products interleaved with one of each other family, then the rest."""
        others = cat.others()
        firsts: dict[str, _Product] = {}
        for p in others:
            firsts.setdefault(p.family, p)
        planted = [used(k, reserved=True if k == _RESERVED_KEY else None) for k in known]
        dup_a = used(_DUPLICATE_KEY)
        dup_b = used(_DUPLICATE_KEY, operation=_DUPLICATE_OPERATION, bump=1.0731, reserved=False)
        facts.duplicate = DuplicateFact(
            _DUPLICATE_KEY,
            (dup_a.sku, dup_b.sku),
            (dup_a.usd, dup_b.usd),
            (dup_a.attrs["operation"], dup_b.attrs["operation"]),
        )
        for p in planted:
            assert p.key is not None
            facts.on_demand_prices[p.key] = p.usd
        ri = next(r for r in planted[0].reserved or () if r["code"] == "4NA7Y494T4")
        facts.reserved_price = ReservedFact(
            _RESERVED_KEY, planted[0].sku, "1yr", "standard", "No Upfront", ri["usd"]
        )
        queue = [*planted[:4], dup_a, *planted[4:], dup_b]
        extra = list(firsts.values())
        head = []
        for i in range(max(len(queue), len(extra))):
            head += queue[i : i + 1] + extra[i : i + 1]
        rest: list[_Product | _Slot] = [
            d
            for d in cat.instances()
            if not (
                d[4] == "Used"
                and PriceKey(
                    f"{cat.families[d[0]].name}.{d[1]}",
                    _PLATFORMS[d[2]][0],
                    d[3],
                    _PLATFORMS[d[2]][1],
                    _PLATFORMS[d[2]][2],
                )
                in planted_keys
            )
        ]
        taken = {id(p) for p in extra}
        rest += [p for p in others if id(p) not in taken]
        rng.shuffle(rest)
        return head, rest

    header = "{" + ",".join(
        f"{ind[1]}{_q(k)}{colon}{_q(v)}"
        for k, v in (
            ("formatVersion", "v1.0"),
            ("disclaimer", DISCLAIMER),
            ("offerCode", "AmazonEC2"),
            ("version", version),
            (
                "publicationDate",
                f"{version[:4]}-{version[4:6]}-{version[6:8]}T"
                f"{version[8:10]}:{version[10:12]}:{version[12:14]}Z",
            ),
        )
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written beside the target (same filesystem), renamed into place only when complete.
    with contextlib.ExitStack() as stack:
        partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
        tmp = [stack.enter_context(open(partial, "w", encoding="ascii"))] + [
            stack.enter_context(
                tempfile.NamedTemporaryFile(
                    "w", dir=path.parent, prefix=f".{path.name}.", suffix=f".{part}", delete=False
                )
            )
            for part in ("ondemand", "reserved")
        ]
        stack.callback(_unlink_all, [f.name for f in tmp])
        main, od, ri = (_Sink(f) for f in tmp)
        main.add(header + f',{ind[1]}"products"{colon}{{')
        head, rest = catalogue()
        for n, item in enumerate(itertools.chain(head, rest)):
            p = item if isinstance(item, _Product) else cat.instance(*item, rng)
            a = p.attrs
            main.item(
                f'{ind[2]}{_q(p.sku)}{colon}{{{ind[3]}"sku"{colon}{_q(p.sku)},'
                f'{ind[3]}"productFamily"{colon}{_q(p.family)},'
                f'{ind[3]}"attributes"{colon}{style.dump(a, 3)}{ind[2]}}}'
            )
            if p.dims is None:
                od.item(
                    tpl.on_demand % {"sku": p.sku, "eff": cat.od_date, "desc": p.desc, "usd": p.usd}
                )
            else:
                term = _term(p.sku, ON_DEMAND_TERM, cat.od_date, p.dims, {})
                od.item(style.entry(p.sku, {f"{p.sku}.{ON_DEMAND_TERM}": term}, 3))
            facts.on_demand_terms += 1
            if p.reserved:
                ri.item(
                    tpl.sku_open % p.sku
                    + ",".join(
                        (tpl.reserved_upfront if "fee" in r else tpl.reserved) % r
                        for r in p.reserved
                    )
                    + tpl.sku_close
                )
                facts.reserved_terms += len(p.reserved)
            families[p.family] += 1
            if p.family == "Compute Instance":
                types.add(a["instanceType"])
                if a["capacitystatus"] == "Used":
                    facts.compute_used_products += 1
                    assert p.key is not None
                    keys.add(p.key)
            for k, v in a.items():
                if k != "instancesku":
                    attr_values.setdefault(k, set()).add(v)
            written = len(header) + main.size + main.pending + od.size + od.pending
            if n >= len(head) - 1 and written + ri.size + ri.pending >= min_bytes:
                break
        else:
            total = len(header) + main.size + main.pending + od.size + od.pending + ri.size
            raise ValueError(f"min_bytes {min_bytes}: the whole catalogue makes {total} bytes")

        main.add(f'{ind[1]}}},{ind[1]}"terms"{colon}{{{ind[2]}"OnDemand"{colon}{{')
        main.flush()
        for sink, name in ((od, "OnDemand"), (ri, "Reserved")):
            sink.flush()
            sink.f.close()
            with open(sink.f.name, encoding="ascii") as src:
                shutil.copyfileobj(src, main.f, 1 << 24)
            if name == "OnDemand":
                main.add(f'{ind[2]}}},{ind[2]}"Reserved"{colon}{{')
                main.flush()
        attributes_list = {k: sorted(v) for k, v in sorted(attr_values.items())}
        main.add(f"{ind[2]}}}{ind[1]}}},{style.entry('attributesList', attributes_list, 1)}")
        main.add(ind[0] + "}")
        main.flush()
        main.f.close()
        os.replace(main.f.name, path)

    facts.bytes_written = path.stat().st_size
    facts.products = sum(families.values())
    facts.products_by_family = dict(families.most_common())
    facts.compute_used_keys = len(keys)
    facts.instance_types = len(types)
    return facts


def _unlink_all(names: list[str]) -> None:
    for name in names:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", type=Path)
    parser.add_argument("--mb", type=float, default=300.0, help="at least this many MB (10^6)")
    parser.add_argument("--compact", action="store_true", help="no whitespace")
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--version", default="20261101000000")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    facts = write_offer_file(
        args.path,
        int(args.mb * 1_000_000),
        region=args.region,
        version=args.version,
        compact=args.compact,
    )
    seconds = time.perf_counter() - t0
    mb = facts.bytes_written / 1e6
    print(f"wrote {facts.path}: {mb:.1f} MB in {seconds:.1f} s ({mb / seconds:.0f} MB/s)")
    for name, value in vars(facts).items():
        if isinstance(value, dict):
            print(f"  {name}:")
            for k, v in value.items():
                print(f"    {tuple(k) if isinstance(k, tuple) else k}: {v}")
        else:
            print(f"  {name}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
