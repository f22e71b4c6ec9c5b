"""Every relative link in the repository's Markdown (the README, docs/, PROVENANCE files, …)
reaches a file that exists and, with a #fragment into Markdown, a heading there: as GitHub
renders them, so a page moved or a heading renamed fails here with each link it broke."""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path
from urllib.parse import unquote

import pytest

from tests.support.samples import ROOT

pytestmark = pytest.mark.unit

# Not the repository's own pages: installed packages, test and run output.
SKIPPED_DIRS = {".git", ".venv", "node_modules", "test-output", ".kopter-dev", "__pycache__"}
FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1")
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s.*)?$")
HTML_TARGET = re.compile(r"<(?:a|img)\b[^>]*\s(?:href|src)=\"([^\"]*)\"", re.IGNORECASE)
HTML_ANCHOR = re.compile(r"<a\b[^>]*\s(?:name|id)=\"([^\"]+)\"", re.IGNORECASE)
HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")
SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)
CODE_LINE = re.compile(r"^L\d+(-L\d+)?$")  # GitHub's line anchors into a source file


def markdown_files(root: Path) -> list[Path]:
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in SKIPPED_DIRS and not d.endswith(".egg-info")]
        found += [Path(folder) / f for f in files if f.endswith(".md")]
    return sorted(found)


def _prose(text: str) -> list[tuple[int, str]]:
    """(line number, line) of the lines outside fenced code blocks."""
    lines, fence = [], None
    for number, line in enumerate(text.splitlines(), 1):
        opened = FENCE.match(line)
        if fence:
            if opened and opened.group(1)[0] == fence[0] and len(opened.group(1)) >= len(fence):
                fence = None
            continue
        if opened:
            fence = opened.group(1)
            continue
        lines.append((number, line))
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor of a heading's text: the text as shown (links by their text, no code
    marks, no HTML), lowercased, punctuation but - and _ dropped, each space a hyphen."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = re.sub(r"<[^>]+>", "", text).replace("`", "")
    text = re.sub(r"(\*\*|__|\*|~~)", "", text)
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every fragment a page answers to: its headings' slugs, a repeated one suffixed -1, -2, …
    in order, and explicit <a name|id> anchors."""
    found, seen = set(), Counter[str]()
    text = path.read_text()
    for _, line in _prose(text):
        heading = HEADING.match(line)
        if heading:
            base = slug(heading.group(1))
            found.add(f"{base}-{seen[base]}" if seen[base] else base)
            seen[base] += 1
        found.update(HTML_ANCHOR.findall(line))
    return found


def targets(text: str) -> list[tuple[int, str]]:
    """(line, target) of every link and image, inline, by reference or in HTML."""
    found = []
    for number, prose in _prose(text):
        line = CODE_SPAN.sub(lambda m: " " * len(m.group(0)), prose)
        found += [(number, t) for t in INLINE_LINK.findall(line)]
        found += [(number, t) for t in HTML_TARGET.findall(line)]
        reference = REFERENCE.match(line)
        if reference:
            found.append((number, reference.group(1)))
    return found


def broken_links(root: Path) -> list[str]:
    broken = []
    for page in markdown_files(root):
        where = page.relative_to(root)
        for number, target in targets(page.read_text()):
            if not target or SCHEME.match(target) or target.startswith("//"):
                continue  # an absolute URL: not this repository's to check
            path, _, fragment = unquote(target).partition("#")
            file = (root / path.lstrip("/")) if path.startswith("/") else page.parent / path
            file = file.resolve() if path else page
            if not file.is_relative_to(root.resolve()):
                broken.append(f"{where}:{number}: {target}: outside the repository")
            elif not file.exists():
                broken.append(f"{where}:{number}: {target}: no such file")
            elif fragment and file.suffix == ".md" and fragment not in anchors(file):
                broken.append(f"{where}:{number}: {target}: no heading #{fragment} there")
            elif fragment and file.suffix != ".md" and not CODE_LINE.match(fragment):
                broken.append(f"{where}:{number}: {target}: #{fragment} is not a line")
    return broken


def test_every_relative_link_in_the_repository_reaches_its_file_and_heading():
    pages = markdown_files(ROOT)
    assert ROOT / "README.md" in pages and len(pages) >= 5
    broken = broken_links(ROOT)
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_the_checker_sees_each_kind_of_broken_link(tmp_path):
    """A negative control on a small tree: GitHub's anchor rules hold, every break is named."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "src.py").write_text("x = 1\n")
    (tmp_path / "docs" / "page.md").write_text(
        "# Page\n\n## Set-up: `kopter dev` & more\n\n## Notes\n\n## Notes\n\n"
        '<a name="custom"></a>\n'
    )
    (tmp_path / "README.md").write_text(
        "\n".join(
            [
                "# Top",
                "[ok](docs/page.md) [ok](docs/page.md#set-up-kopter-dev--more)",
                "[dup](docs/page.md#notes-1) [html](docs/page.md#custom) [self](#top)",
                "![img](src.py) [line](src.py#L1-L2) [web](https://example.com/x#y)",
                "`[in code](missing.md)` and",
                "```",
                "[in a fence](missing.md)",
                "```",
                "[gone](docs/missing.md) [bad anchor](docs/page.md#notes-2)",
                '<img src="missing.png"> [escape](../outside.md) [self](#nowhere) [code](src.py#x)',
                "[ref]: docs/gone.md",
            ]
        )
    )
    assert broken_links(tmp_path) == [
        "README.md:9: docs/missing.md: no such file",
        "README.md:9: docs/page.md#notes-2: no heading #notes-2 there",
        "README.md:10: ../outside.md: outside the repository",
        "README.md:10: #nowhere: no heading #nowhere there",
        "README.md:10: src.py#x: #x is not a line",
        "README.md:10: missing.png: no such file",
        "README.md:11: docs/gone.md: no such file",
    ]
