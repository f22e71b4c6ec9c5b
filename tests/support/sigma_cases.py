"""The records of tests/fixtures/sigma/: for each vendored Sigma rule, calls it must match and
calls it must not, written by hand from the rule's intent and from what CloudTrail logs, never
generated from the rule (so a matcher that is wrong fails them).

Each file is named after its rule's file (``aws_cloudtrail_disable_logging.yml``) and holds two
lists, ``match`` and ``miss``. A case is one of

- ``real``: a file under tests/fixtures/real/cloudtrail/ (a bare JSON array or a gzipped
  ``{"Records": …}`` delivery file) and ``event``: the eventName of the record taken (the first
  with it, or the ``nth``, from 0);
- ``record``: a whole CloudTrail record;
- ``from``: the N-th (from 0) ``match`` case of the same file (an earlier one, for a match),

then changed by ``set`` (a dotted path and its new value; ``null`` writes JSON null) and ``unset``
(dotted paths removed), and said in one line by ``why``.
"""

from __future__ import annotations

import copy
import functools
import gzip
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.support.samples import FIXTURES, ROOT

CASES_DIR = ROOT / "tests" / "fixtures" / "sigma"
REAL_CLOUDTRAIL = FIXTURES / "cloudtrail"


@dataclass(frozen=True)
class Case:
    rule_file: str
    expected: bool  # True: the rule must match the record
    number: int
    why: str
    record: dict[str, Any]

    @property
    def label(self) -> str:
        kind = "match" if self.expected else "miss"
        return f"{self.rule_file.removesuffix('.yml')}:{kind}{self.number}"


def cases(rule_file: str) -> list[Case]:
    data = yaml.safe_load((CASES_DIR / rule_file).read_text())
    matches: list[dict[str, Any]] = []
    for spec in data["match"]:  # a match case may start from an earlier one
        matches.append(_record(spec, matches))
    misses = [_record(spec, matches) for spec in data["miss"]]
    return [
        Case(rule_file, expected, i, spec.get("why", ""), record)
        for expected, specs, records in (
            (True, data["match"], matches),
            (False, data["miss"], misses),
        )
        for i, (spec, record) in enumerate(zip(specs, records, strict=True))
    ]


def _record(spec: dict[str, Any], matches: list[dict[str, Any]]) -> dict[str, Any]:
    if "real" in spec:
        found = [r for r in real_records(spec["real"]) if r["eventName"] == spec["event"]]
        record = copy.deepcopy(found[spec.get("nth", 0)])
    elif "from" in spec:
        record = copy.deepcopy(matches[spec["from"]])
    else:
        record = copy.deepcopy(spec["record"])
    for path, value in spec.get("set", {}).items():
        *parents, last = path.split(".")
        _walk(record, parents, create=True)[last] = value
    for path in spec.get("unset", []):
        *parents, last = path.split(".")
        del _walk(record, parents, create=False)[last]
    return record


def _walk(record: dict[str, Any], parents: list[str], *, create: bool) -> dict[str, Any]:
    node = record
    for key in parents:
        node = node.setdefault(key, {}) if create else node[key]
    return node


@functools.cache
def real_records(name: str) -> tuple[dict[str, Any], ...]:
    path = REAL_CLOUDTRAIL / name
    if path.suffix == ".gz":
        return tuple(json.loads(gzip.decompress(path.read_bytes()))["Records"])
    return tuple(json.loads(path.read_text()))


def fixture_files() -> list[Path]:
    return sorted(CASES_DIR.glob("*.yml"))
