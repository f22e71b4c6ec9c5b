"""The layers, read from the imports: the domain (kopter's pipelines and base modules) knows neither
the task layer nor Celery nor kombu nor any face (the command line, the read API, the local
stack), and the task layer knows no face."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.support.samples import ROOT

pytestmark = pytest.mark.unit

# What sits above both the domain and tasks/: the faces. `python -m kopter` (kopter/__main__.py)
# is the command line's entry point.
FACES = ("kopter.cli", "kopter.api", "kopter.dev", "kopter.__main__")
TASK_LAYER = ("tasks", "celery", "kombu", "beat_schedule", "celeryconfig")


def _module(root: Path, path: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, module: str) -> set[str]:
    """Every module ``path`` (the module ``module``) imports, at its top or inside a function,
    a relative import by its absolute name."""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            name = ".".join([*base, *([node.module] if node.module else [])])
            found.add(name)
            found.update(f"{name}.{alias.name}" for alias in node.names)
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
            f"{module} imports {name}"
            for name in sorted(_imports(path, module))
            if _under(name, forbidden)
        ]
    return found


def test_the_domain_imports_neither_tasks_nor_celery_nor_kombu_nor_a_face():
    assert _violations("kopter", FACES, TASK_LAYER + FACES) == []


def test_tasks_import_no_face():
    assert _violations("tasks", (), FACES) == []


def test_only_the_faces_read_the_settings_from_the_environment():
    """The domain is handed its settings: a second deployment in one process needs no
    environment of its own."""
    allowed = (*FACES, "kopter.settings")
    assert _violations("kopter", allowed, ("kopter.settings.get_settings",)) == []


def test_the_checker_sees_a_violation(tmp_path):
    """A negative control: domain modules that import Celery or a face, by absolute or
    relative name, are caught; a face importing another face or the task layer is not."""
    (tmp_path / "kopter" / "api").mkdir(parents=True)
    (tmp_path / "kopter" / "reads").mkdir()
    (tmp_path / "kopter" / "api" / "app.py").write_text("import tasks\nfrom kopter import cli\n")
    (tmp_path / "kopter" / "__main__.py").write_text("from kopter.cli import main\n")
    (tmp_path / "kopter" / "probe.py").write_text("def f():\n    from celery import group\n")
    (tmp_path / "kopter" / "demo.py").write_text("from kopter import dev\n")
    (tmp_path / "kopter" / "reads" / "__init__.py").write_text("from ..api import app\n")
    (tmp_path / "kopter" / "reads" / "audit.py").write_text("from .. import cli\n")
    assert _violations("kopter", FACES, TASK_LAYER + FACES, tmp_path) == [
        "kopter.demo imports kopter.dev",
        "kopter.probe imports celery",
        "kopter.probe imports celery.group",
        "kopter.reads imports kopter.api",
        "kopter.reads imports kopter.api.app",
        "kopter.reads.audit imports kopter.cli",
    ]
