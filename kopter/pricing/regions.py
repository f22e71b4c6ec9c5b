"""Which region an offer file is for, read from its products: ``regionCode`` (a Local Zone's or
Wavelength Zone's code names its parent region: ``us-east-1-bos-1`` is us-east-1), or, in files
older than ``regionCode``, the ``location`` name (``US West (Oregon)``), as botocore's endpoint
data names the regions and the Price List spells them.
"""

from __future__ import annotations

import re
from functools import cache

import botocore.session

from kopter.errors import KopterError

# A region's code is the shortest prefix of a zone's code that ends in "-<number>".
_PARENT_REGION = re.compile(r"^(.+?-\d+)(?:-|$)")
# Names the Price List uses, or used, that botocore spells otherwise.
_OLD_NAMES = {
    "AWS GovCloud (US)": "us-gov-west-1",
    "Asia Pacific (Osaka-Local)": "ap-northeast-3",
}


class RegionNotNamed(KopterError):
    """The products name several regions, or none: the caller must say which."""


@cache  # a file has a few distinct pairs, and hundreds of thousands of products
def region_of(region_code: str, location: str) -> str | None:
    """The region a product names, or None when it names none kopter knows."""
    if region_code:
        match = _PARENT_REGION.match(region_code)
        return match.group(1) if match else region_code
    return _regions_by_location().get(location) if location else None


@cache
def _regions_by_location() -> dict[str, str]:
    endpoints = botocore.session.Session().get_data("endpoints")
    names = dict(_OLD_NAMES)
    for partition in endpoints["partitions"]:
        for region, entry in partition["regions"].items():
            name = entry.get("description", "")
            names[name] = region
            if name.startswith("Europe ("):  # the Price List writes "EU (Ireland)"
                names["EU" + name.removeprefix("Europe")] = region
    return names


def the_region(named: set[str], source: str) -> str:
    """The one region the products named; otherwise one line that says to pass ``--region``."""
    if len(named) == 1:
        return next(iter(named))
    if named:
        raise RegionNotNamed(
            f"{source} names {len(named)} regions ({', '.join(sorted(named))}): pass --region R"
        )
    raise RegionNotNamed(
        f"{source} names no region (no product has a regionCode or a known location): "
        "pass --region R"
    )
