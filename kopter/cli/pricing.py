"""`kopter pricing import` and `kopter prices`: the EC2 price list, imported now and read."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path

import click

from kopter.cli.output import Progress, emit, json_option
from kopter.errors import KopterError
from kopter.settings import get_settings


@click.group("pricing")
def pricing_group() -> None:
    """The EC2 price list (AWS Price List bulk files)."""


@pricing_group.command("import")
@click.argument("source")
@click.option(
    "--region",
    "regions",
    multiple=True,
    help="For a file or an index.json URL: its region, when its products do not name exactly "
    "one; for a region index: the regions to import (default: every region kopter prices).",
)
@json_option
def pricing_import(source: str, regions: tuple[str, ...], as_json: bool) -> None:
    """Import prices now, inline, as the pricing worker would.

    SOURCE is a local offer file, the URL of a region's index.json, or the URL of a
    region_index.json (each region whose version changed is imported). A file's region is read
    from its products (regionCode, or the location's name in older files); a file that names
    several regions, or none, needs --region."""
    from kopter import cache
    from kopter.pricing import refresh
    from kopter.pricing.cache import PriceCache
    from kopter.pricing.refresh import RegionImport
    from kopter.pricing.source import Download, HttpSource, is_url, open_file
    from kopter.pricing.store import DynamoPriceTable

    settings = get_settings()
    table = DynamoPriceTable(settings)
    prices = PriceCache(cache.client(settings), settings.prefix)
    # Each import by its label, run with a progress callback.
    imports: list[tuple[str, Callable[[Callable[[int, int | None], None]], RegionImport]]] = []
    if source.endswith("region_index.json") and is_url(source):
        http = HttpSource.from_settings(settings, source.rsplit("/offers/", 1)[0])
        plan = refresh.plan(http, regions or refresh.pricing_regions(settings))
        for region in plan.unchanged:
            click.echo(f"{region}: version unchanged, nothing to import", err=True)
        for region in plan.not_offered:
            click.echo(f"{region}: not in the price list's index", err=True)
        for offer in plan.due:
            imports.append(
                (offer.region, partial(refresh.import_region, offer, http, table, prices))
            )
    else:
        if len(regions) > 1:
            raise KopterError("a file is of one region: give --region once")
        named = regions[0] if regions else None
        if is_url(source):
            http = HttpSource.from_settings(settings, source)
            opener: Callable[[], Download] = partial(http.download, source)
        else:
            path = Path(source)
            if not path.is_file():
                raise KopterError(f"{source}: no such file")
            opener = partial(open_file, path)
        imports.append(
            (named or source, partial(refresh.import_offer, opener, named, None, table, prices))
        )
    failed = False
    for label, run in imports:
        bar = Progress(label)
        try:
            result = run(bar.update)
        finally:
            bar.done()
        failed |= result.status == "failed"
        name = result.region or source
        if as_json:
            emit([result.as_dict()], True, [])
        elif result.status == "imported":
            click.echo(
                f"{name}: imported version {result.version}, {result.megabytes} MB in "
                f"{result.seconds}s: {result.rows} prices ({result.written} written, "
                f"{result.unchanged} unchanged, {result.gone} gone), "
                f"{result.duplicates} duplicates resolved, {result.products} products read"
            )
        else:
            click.echo(f"{name}: {result.status}" + (f": {result.error}" if result.error else ""))
    if failed:
        sys.exit(1)


@click.command()
@click.option("--region", required=True, help="An AWS region, e.g. us-east-1.")
@click.option("--instance-type", help="e.g. m5.large")
@click.option("--os", "operating_system", help="Linux, Windows, RHEL, SUSE, …")
@click.option("--tenancy", help="Shared, Dedicated or Host.")
@click.option("--gone", "include_gone", is_flag=True, help="Also products no longer offered.")
@json_option
def prices(
    region: str,
    instance_type: str | None,
    operating_system: str | None,
    tenancy: str | None,
    include_gone: bool,
    as_json: bool,
) -> None:
    """Look up stored EC2 prices (USD, exact)."""
    from kopter.reads.prices import PriceQuery, query, view

    found = query(PriceQuery(region, instance_type, operating_system, tenancy, include_gone))
    rows = (view(p) for p in found)
    if as_json:
        emit(rows, True, [])
        return
    table = [{**r, "reserved": len(r["reserved"]), "gone": r["gone"] or None} for r in list(rows)]
    emit(
        table,
        False,
        [
            "instance_type",
            "os",
            "tenancy",
            "license",
            "software",
            "on_demand_hourly_usd",
            "reserved",
        ]
        + (["gone"] if include_gone else []),
    )
