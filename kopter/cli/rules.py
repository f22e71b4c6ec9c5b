"""`kopter rules` and `kopter findings`: a tenant's detection rules, and what they found."""

from __future__ import annotations

from pathlib import Path

import click

from kopter import accounts, times
from kopter.cli.output import emit, json_option, tenant_option
from kopter.errors import Refused

COLUMNS = ["id", "source", "level", "enabled", "title", "author"]


@click.group("rules")
def rules_group() -> None:
    """The detection rules a tenant's records are judged by as they are ingested: kopter's own,
    SigmaHQ's CloudTrail rules, and the tenant's own Sigma rules. A record a rule matches is a
    finding (`kopter findings`), notified at once."""


@rules_group.command("list")
@tenant_option
@json_option
def rules_list(tenant: str, as_json: bool) -> None:
    """Every rule of the tenant: id, title, source (kopter, sigma, tenant), author, level, and
    whether it is on for the tenant."""
    from kopter.reads.rules import query, view

    tenant_id = accounts.resolve_tenant(tenant).tenant_id
    emit((view(rule, enabled) for rule, enabled in query(tenant_id)), as_json, COLUMNS)


@rules_group.command("add")
@tenant_option
@click.argument("file", type=click.Path(path_type=Path))
@json_option
def rules_add(tenant: str, file: Path, as_json: bool) -> None:
    """Add the tenant's own Sigma rule (FILE.yml, one rule, logsource product aws, service
    cloudtrail, with an id: a UUID of its own), on at once; a rule of the same id is replaced.
    A rule kopter would not run exactly (too big, too many comparisons, a modifier it does not
    evaluate, a regular expression RE2 cannot run...) is refused with the reason, and nothing
    is stored."""
    from kopter.detections import tenant_rules
    from kopter.detections.sigma import MAX_RULE_BYTES
    from kopter.reads.rules import view

    tenant_id = accounts.resolve_tenant(tenant).tenant_id
    try:
        with file.open("rb") as f:
            data = f.read(MAX_RULE_BYTES + 1)
    except OSError as e:
        raise Refused(f"{file}: {e.strerror}") from None
    if len(data) > MAX_RULE_BYTES:
        raise Refused(f"{file}: a Sigma rule of more than {MAX_RULE_BYTES:,} bytes")
    try:
        text = data.decode()
    except UnicodeDecodeError:
        raise Refused(f"{file}: not UTF-8 text") from None
    rule = tenant_rules.add(tenant_id, text)
    if as_json:
        emit([view(rule, True)], True, [])
    else:
        click.echo(f"added rule {rule.id} ({rule.level}): {rule.title}")


def _switch(enabled: bool) -> click.Command:
    @click.command("enable" if enabled else "disable")
    @tenant_option
    @click.argument("rule_id")
    @json_option
    def switch(tenant: str, rule_id: str, as_json: bool) -> None:
        from kopter.detections import tenant_rules
        from kopter.reads.rules import view

        tenant_id = accounts.resolve_tenant(tenant).tenant_id
        rule = tenant_rules.set_enabled(tenant_id, rule_id, enabled)
        if as_json:
            emit([view(rule, enabled)], True, [])
        else:
            click.echo(f"{'enabled' if enabled else 'disabled'} rule {rule.id}: {rule.title}")

    switch.help = (
        f"Turn the rule RULE_ID {'on' if enabled else 'off'} for the tenant (kopter's and "
        "SigmaHQ's rules too, for this tenant alone). Workers apply it within "
        "KOPTER_RULES_CACHE_SECONDS."
    )
    return switch


rules_group.add_command(_switch(True))
rules_group.add_command(_switch(False))


@click.command()
@tenant_option
@click.option("--since", help="Records from this ISO date or time (UTC), inclusive.")
@click.option("--until", help="Records up to this ISO date or time (UTC), exclusive.")
@click.option("--limit", type=click.IntRange(1), default=100, show_default=True)
@json_option
def findings(tenant: str, since: str | None, until: str | None, limit: int, as_json: bool) -> None:
    """The records the tenant's rules matched as they were ingested, newest first, each with
    every rule that matched it."""
    from kopter.reads.findings import FindingsQuery, query, view

    q = FindingsQuery(
        accounts.resolve_tenant(tenant).tenant_id,
        since=times.from_iso(since) if since else None,
        until=times.from_iso(until) if until else None,
        limit=limit,
    )
    rows = (view(f) for f in query(q))
    if as_json:
        emit(rows, True, [])
        return
    shown = ({**row, "rules": [r["id"] for r in row["rules"]]} for row in rows)
    columns = ["event_time", "level", "account_id", "event_name", "principal", "rules"]
    emit(shown, False, columns)
