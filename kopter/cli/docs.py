"""`kopter docs` (hidden; `make docs` runs it): the reference pages made from what the code
knows, so that they cannot drift from it. The settings come from ``kopter.settings`` (each field's
meaning, the defaults ``load`` gives) and `kopter dev`'s options, the commands from the click tree
itself, the read API from its OpenAPI document, kopter's detection rules from their list.
``tests/test_docs.py`` makes the pages again and fails when a file differs from them."""

from __future__ import annotations

import dataclasses
import inspect
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click

from kopter.errors import KopterError
from kopter.settings import Settings, load

REFERENCE = Path("docs/reference")
MADE_BY = "<!-- Made by `make docs` (kopter/cli/docs.py) from {source}: edit that, not this. -->"


def settings_page() -> str:
    from kopter.cli.operate import dev

    defaults = load({}).for_display()
    lines = [
        "# Settings",
        "",
        MADE_BY.format(source="kopter/settings.py"),
        "",
        "Every setting is an environment variable, read once at start-up in `kopter/settings.py`;",
        "a malformed value stops the process with one line naming the variable. `kopter settings`",
        "prints what a process reads. AWS credentials come from the usual places (environment,",
        "instance or task role); kopter needs them even against moto (`kopter dev` and the tests",
        "set dummy ones).",
        "",
        "| variable | default | meaning |",
        "|---|---|---|",
    ]
    for f in dataclasses.fields(Settings):
        name = f"KOPTER_{f.name.upper()}"
        default = defaults[name]
        if "meaning" not in f.metadata:
            raise KopterError(f"{name} has no meaning: give its field in kopter/settings.py one")
        shown = f"`{default}`" if default else _unset(f.metadata["unset"])
        lines.append(_row(f"`{name}`", shown, f.metadata["meaning"]))
    lines += [
        "",
        "## `kopter dev` only",
        "",
        "Options of [`kopter dev`](commands.md#kopter-dev) (`make run`), read from the",
        "environment as well.",
        "",
        "| variable | default | meaning |",
        "|---|---|---|",
    ]
    for option in dev.params:
        if isinstance(option, click.Option) and isinstance(option.envvar, str):
            lines.append(_row(f"`{option.envvar}`", f"`{option.default}`", option.help or ""))
    return "\n".join(lines) + "\n"


def _unset(what: str) -> str:
    return f"unset: {what}" if what else "unset"


def commands_page(root: click.Group) -> str:
    lines = [
        "# Commands",
        "",
        MADE_BY.format(source="the `kopter` command's own definitions (kopter/cli/)"),
        "",
        "Every command takes `-h` or `--help`. Listings take `--json` (one JSON object a line).",
        "Bad input is one line on stderr (`kopter: error: …`) and a non-zero exit.",
        "",
    ]
    commands = list(_walk(root, click.Context(root, info_name="kopter", **root.context_settings)))
    lines += [f"- [`{ctx.command_path}`](#{_anchor(ctx.command_path)})" for ctx, _ in commands]
    for ctx, command in commands:
        lines += ["", f"## {ctx.command_path}", "", "```", _usage(ctx, command), "```", ""]
        lines.append(inspect.cleandoc(command.help or ""))
        options = [
            p.get_help_record(ctx)
            for p in command.get_params(ctx)
            if isinstance(p, click.Option) and not set(p.opts) & set(ctx.help_option_names)
        ]
        if any(options):
            lines += ["", "| option | meaning |", "|---|---|"]
            lines += [_row(f"`{names}`", text) for names, text in filter(None, options)]
    return "\n".join(lines) + "\n"


def _walk(command: click.Command, ctx: click.Context) -> Iterator[tuple[click.Context, Any]]:
    yield ctx, command
    if isinstance(command, click.Group):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is not None and not sub.hidden:
                yield from _walk(sub, click.Context(sub, info_name=name, parent=ctx))


def _usage(ctx: click.Context, command: click.Command) -> str:
    return " ".join([ctx.command_path, *command.collect_usage_pieces(ctx)])


def api_page() -> str:
    from kopter.api import app, gateway

    # Any valid settings make the same routes; jwt mode names its bearer scheme on each path.
    settings = dataclasses.replace(
        load({}),
        api_auth="jwt",
        api_jwt_algorithm="HS256",
        api_jwt_key=gateway.PLACEHOLDER,
        api_cursor_key=gateway.PLACEHOLDER,
    )
    document = gateway.plain(settings)
    lines = [
        "# Read API",
        "",
        MADE_BY.format(source="the read API's OpenAPI document (`kopter api openapi`)"),
        "",
        f"{document['info']['title']}, version {document['info']['version']}: "
        + document["info"]["description"],
        "",
        "Every path but those marked *public* needs an identity, from `KOPTER_API_AUTH`:",
        "",
    ]
    for mode, schemes in app.SECURITY_SCHEMES.items():
        for scheme in schemes.values():
            where = scheme.get("name") or f"Authorization: {scheme['scheme'].title()}"
            lines.append(f"- `{mode}`: `{where}`: {scheme['description']}")
    operations = [
        (method.upper(), path, operation)
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
    ]
    lines.append("")
    lines += [f"- [`{m} {p}`](#{_anchor(f'{m} {p}')}): {op['summary']}" for m, p, op in operations]
    for method, path, operation in operations:
        public = "" if "security" in operation else " (public)"
        lines += ["", f"## {method} {path}", "", f"**{operation['summary']}**{public}"]
        if operation.get("description"):
            lines += ["", operation["description"]]
        parameters = operation.get("parameters", [])
        if parameters:
            lines += ["", "| parameter | in | type | meaning |", "|---|---|---|---|"]
            for p in parameters:
                name = f"`{p['name']}`" + (" (required)" if p.get("required") else "")
                meaning = p.get("description", "") + _limits(p["schema"])
                lines.append(_row(name, p["in"], _type(p["schema"]), meaning))
        lines += ["", "| status | meaning | body |", "|---|---|---|"]
        for status, response in operation["responses"].items():
            body = response.get("content", {}).get("application/json", {}).get("schema")
            lines.append(_row(status, response["description"], _type(body) if body else "-"))
    lines += ["", "## Schemas", "", "The bodies above, field by field."]
    for name, schema in document["components"]["schemas"].items():
        lines += ["", f"### {name}", ""]
        if schema.get("description"):
            lines += [inspect.cleandoc(schema["description"]), ""]
        required = set(schema.get("required", []))
        lines += ["| field | type | meaning |", "|---|---|---|"]
        for field, spec in schema.get("properties", {}).items():
            label = f"`{field}`" + ("" if field in required else " (optional)")
            lines.append(_row(label, _type(spec), spec.get("description", "") + _limits(spec)))
    return "\n".join(lines) + "\n"


def _type(schema: dict[str, Any]) -> str:
    """A JSON schema as a short phrase, a named schema linked to its section below."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        return f"[{name}](#{_anchor(name)})"
    if "anyOf" in schema:
        return " or ".join(_type(s) for s in schema["anyOf"])
    if "enum" in schema:
        return " or ".join(f"`{v}`" for v in schema["enum"])
    kind = schema.get("type", "any")
    if kind == "array":
        return f"array of {_type(schema.get('items', {}))}"
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return f"object of {_type(schema['additionalProperties'])}"
    return f"{kind} ({schema['format']})" if "format" in schema else str(kind)


def _limits(schema: dict[str, Any]) -> str:
    """What a value must be and its default, from the schema and its alternatives."""
    found = []
    for s in [schema, *schema.get("anyOf", [])]:
        if "minimum" in s or "maximum" in s:
            found.append(f"{s.get('minimum', '…')} to {s.get('maximum', '…')}")
        if "maxLength" in s:
            found.append(f"at most {s['maxLength']} characters")
        if "pattern" in s:
            found.append(f"matches `{s['pattern']}`")
    if "default" in schema:
        found.append(f"default `{str(schema['default']).lower()}`")
    return f" ({'; '.join(found)})" if found else ""


def _row(*cells: str) -> str:
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


def _cell(text: str) -> str:
    """Text for a table cell: one line, pipes escaped (GitHub reads them before code spans),
    and outside code spans < as text, never the start of a tag."""
    parts = " ".join(text.split()).replace("|", "\\|").split("`")
    return "`".join(p if i % 2 else p.replace("<", "&lt;") for i, p in enumerate(parts))


def _anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lowercase, punctuation but - and _ dropped, spaces to -."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


# A rule that looks at more calls than this names how many, not each.
CALLS_NAMED = 6


def audit_rules_page() -> str:
    from kopter.cloudtrail.rules import EITHER, FAILED, RULES
    from kopter.detections.kopter_rules import single_record

    def fires_on(rule: Any) -> str:
        text = str(rule.description)
        text += {FAILED: " (failed calls)", EITHER: " (failed or not)"}.get(rule.outcome, "")
        names = sorted({name for _, name in rule.calls})
        if len(names) > CALLS_NAMED:
            return f"{text}: {len(names)} calls"
        return text + (": " + ", ".join(f"`{n}`" for n in names) if names else "")

    lines = [
        "# kopter's detection rules",
        "",
        MADE_BY.format(source="kopter/cloudtrail/rules.py"),
        "",
        "kopter's own rules (`source: kopter` in `kopter rules list`), beside SigmaHQ's and each",
        "tenant's ([detections](../detections.md)). A rule that judges one call runs at ingest",
        "and its finding is raised at once; one that counts calls of a principal over the day, or",
        "compares calls, runs in the daily audit ([the pipeline](../pipelines/audit.md)). High and",
        "critical findings notify.",
        "",
        "| rule | severity | MITRE ATT&CK | fires on | runs | Stratus Red Team technique |",
        "|---|---|---|---|---|---|",
    ]
    for rule in RULES:
        t = rule.technique
        stratus = "<br>".join(f"`{s.removeprefix('aws.')}`" for s in rule.stratus) or "\N{EN DASH}"
        runs = "at ingest" if single_record(rule) else "daily"
        lines.append(
            f"| `{rule.name}` | {rule.severity} | {t.tactic}: {t.id} {t.name} | {fires_on(rule)} "
            f"| {runs} | {stratus} |"
        )
    return "\n".join(lines) + "\n"


def pages() -> dict[str, Callable[[], str]]:
    from kopter.cli.root import cli

    return {
        "settings.md": settings_page,
        "commands.md": lambda: commands_page(cli),
        "api.md": api_page,
        "rules.md": audit_rules_page,
    }


@click.command(hidden=True)
@click.argument("target", type=click.Path(file_okay=False, path_type=Path), default=str(REFERENCE))
def docs(target: Path) -> None:
    """Write the reference pages (settings, commands, read API, kopter's rules) into TARGET."""
    target.mkdir(parents=True, exist_ok=True)
    for name, make in pages().items():
        (target / name).write_text(make())
        click.echo(f"wrote {target / name}")
