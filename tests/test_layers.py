"""The layers, read from the imports: the domain (kopter's pipelines and base modules) knows neither
the task layer nor Celery nor kombu, and the task layer knows no face (the command line, the read
API, the local stack)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.support.samples import ROOT

pytestmark = pytest.mark.unit

# What sits above both the domain and tasks/: the faces.
FACES = ("kopter.cli", "kopter.api", "kopter.dev")
TASK_LAYER = ("tasks", "celery", "kombu", "beat_schedule", "celeryconfig")


def _module(root: Path, path: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at its top or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _under(name: str, roots: tuple[str, ...]) -> bool:
    return any(name == root or name.startswith(root + ".") for root in roots)


def _violations(
    package: str, allowed: tuple[str, ...], forbidden: tuple[str, ...], root: Path = ROOT
) -> list[str]:
    found = []
    for path in sorted((root / package).rglob("*.py")):
        module = _module(root, path)
        if _under(module, allowed):
            continue
        found += [
            f"{module} imports {name}" for name in sorted(_imports(path)) if _under(name, forbidden)
        ]
    return found


def test_the_domain_imports_neither_tasks_nor_celery_nor_kombu():
    assert _violations("kopter", FACES, TASK_LAYER) == []


def test_tasks_import_no_face():
    assert _violations("tasks", (), FACES) == []


def test_only_the_faces_read_the_settings_from_the_environment():
    """The domain is handed its settings: a second deployment in one process needs no
    environment of its own."""
    allowed = (*FACES, "kopter.settings")
    assert _violations("kopter", allowed, ("kopter.settings.get_settings",)) == []


def test_the_checker_sees_a_violation(tmp_path):
    """A negative control: a domain module that imports Celery is caught."""
    (tmp_path / "kopter" / "api").mkdir(parents=True)
    (tmp_path / "kopter" / "api" / "app.py").write_text("import tasks\n")  # a face may
    (tmp_path / "kopter" / "probe.py").write_text("def f():\n    from celery import group\n")
    assert _violations("kopter", FACES, TASK_LAYER, tmp_path) == [
        "kopter.probe imports celery",
        "kopter.probe imports celery.group",
    ]
