"""The reference pages in docs/reference/ are what the code makes now (`make docs`): a setting, a
command, an option or a route added without `make docs` fails here. And the README stays a front
page: short, with its picture and screenshot, and a map that reaches every page of docs/."""

from __future__ import annotations

import dataclasses

import click
import pytest

from kopter.cli import docs
from kopter.cli.root import cli
from kopter.errors import KopterError
from kopter.settings import Settings, load
from tests.support.samples import ROOT
from tests.test_links import targets

pytestmark = pytest.mark.unit

README = ROOT / "README.md"


@pytest.mark.parametrize("name", list(docs.pages()))
def test_each_reference_page_is_what_the_code_makes(name):
    path = ROOT / "docs" / "reference" / name
    made = docs.pages()[name]()
    assert path.is_file(), f"docs/reference/{name} is missing: run `make docs`"
    assert path.read_text() == made, f"docs/reference/{name} is stale: run `make docs`"


def test_the_pages_name_every_setting_command_option_and_route():
    settings, commands, api = (docs.pages()[n]() for n in ("settings.md", "commands.md", "api.md"))
    for f in dataclasses.fields(Settings):
        assert f"| `KOPTER_{f.name.upper()}` |" in settings, f.name
    shown = load({}).for_display()
    assert "| `KOPTER_REGION` | `us-east-1` | kopter's own region" in settings
    assert shown["KOPTER_API_AUTH"] == "" and "| unset: `kopter api` refuses to start |" in settings
    assert "| `KOPTER_DEV_API_PORT` | `8080` | The read API's and the web app's port. |" in settings
    assert "## kopter accounts template\n" in commands
    assert "| `--format [yaml\\|json]` | [default: yaml] |" in commands  # a pipe kept in its cell
    assert "## kopter docs" not in commands  # hidden: a maintainer's tool
    for path in ("/v1/audit/aws", "/v1/digests/{day}", "/v1/notifications/{id}/read"):
        assert f" {path}\n" in api, path
    limit = "| `limit` | query | integer | Items per page, at most. (1 to 1000; default `100`) |"
    assert limit in api


def test_a_new_command_or_option_changes_the_commands_page():
    before = docs.commands_page(cli)

    @click.group()
    def extended() -> None:
        """kopter."""

    @extended.command("frobnicate")
    @click.option("--level", default=3, show_default=True, help="How hard.")
    def frobnicate(level: int) -> None:
        """Frobnicate the fleet."""

    for name, command in cli.commands.items():
        extended.add_command(command, name)
    after = docs.commands_page(extended)
    assert after != before
    assert "## kopter frobnicate\n\n```\nkopter frobnicate [OPTIONS]\n```" in after
    assert "| `--level INTEGER` | How hard. [default: 3] |" in after


def test_a_setting_without_its_meaning_is_refused(monkeypatch):
    @dataclasses.dataclass(frozen=True)
    class Unexplained(Settings):
        shiny: str = "new"

    monkeypatch.setattr(docs, "Settings", Unexplained)
    monkeypatch.setattr(docs, "load", lambda env: Unexplained(**vars(load(env))))
    with pytest.raises(KopterError, match="KOPTER_SHINY has no meaning"):
        docs.settings_page()


def test_table_cells_keep_pipes_and_angle_brackets_as_text():
    assert docs._cell("a | b `x|y` 1<=x and `1<2`") == "a \\| b `x\\|y` 1&lt;=x and `1<2`"
    assert docs._anchor("GET /v1/digests/{day}") == "get-v1digestsday"
    assert docs._anchor("`kopter dev` only") == "kopter-dev-only"


def test_the_readme_is_a_front_page_under_250_lines():
    text = README.read_text()
    lines = len(text.splitlines())
    assert lines < 250, f"README.md has {lines} lines: move the detail into its page in docs/"
    assert "```mermaid\nflowchart" in text  # the picture, drawn by the code host
    assert "](web/cost-page.png)" in text


def test_the_readmes_map_reaches_every_page_of_docs():
    linked = {(ROOT / t.partition("#")[0]).resolve() for _, t in targets(README.read_text())}
    pages = {p.resolve() for p in (ROOT / "docs").rglob("*.md")}
    unmapped = sorted(str(p.relative_to(ROOT)) for p in pages - linked)
    assert not unmapped, f"pages of docs/ the README's map does not link: {unmapped}"
