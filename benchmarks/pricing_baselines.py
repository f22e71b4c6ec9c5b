"""Baselines for the pricing benchmark: what reading an offer file costs without kopter.

Each runs in a fresh subprocess, so its peak RSS is that process's own (`ru_maxrss` at the end,
interpreter included, nothing subtracted) and one baseline's garbage never inflates another's:

- `json.load`: the whole file parsed into one dict, the naive importer.
- `ijson`: streamed with ijson's fastest backend (yajl2_c when its C extension loads): one pass
  over `products` keeping the Compute Instance attributes a price needs, one over
  `terms.OnDemand` keeping each of those SKUs' hourly USD. Two passes, because `terms` comes
  after `products` in the file and ijson's item builders follow one prefix at a time.

Seconds are measured inside the subprocess around the work (start-up and imports excluded);
MB/s is the file's size (10^6 bytes) over those seconds.

    python -m benchmarks.pricing_baselines /tmp/index.json [--timeout 600] [--kind ijson]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

KINDS = ("json.load", "ijson")

# Both children print one JSON line: seconds, peak RSS in MB and a note.
_RSS = """
import resource, sys
def peak_rss_mb():
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 1024  # bytes on macOS, else KiB
"""

_JSON_LOAD = (
    _RSS
    + """
import json, time
t0 = time.perf_counter()
with open(sys.argv[1], "rb") as f:
    offer = json.load(f)
seconds = time.perf_counter() - t0
note = f"{len(offer['products'])} products"
print(json.dumps({"seconds": seconds, "peak_rss_mb": peak_rss_mb(), "note": note}))
"""
)

_IJSON = (
    _RSS
    + """
import json, time
import ijson
try:
    backend = ijson.get_backend("yajl2_c")
except ImportError:
    backend = ijson  # the best backend this install has
t0 = time.perf_counter()
compute, prices = {}, {}
with open(sys.argv[1], "rb") as f:
    for sku, product in backend.kvitems(f, "products", buf_size=1 << 18):
        if product["productFamily"] == "Compute Instance":
            a = product["attributes"]
            compute[sku] = (a["instanceType"], a["operatingSystem"], a["tenancy"],
                            a["licenseModel"], a["preInstalledSw"], a.get("capacitystatus"))
    f.seek(0)
    for sku, terms in backend.kvitems(f, "terms.OnDemand", buf_size=1 << 18):
        if sku in compute:
            for term in terms.values():
                for dim in term["priceDimensions"].values():
                    prices[sku] = dim["pricePerUnit"]["USD"]
seconds = time.perf_counter() - t0
note = (f"backend {backend.backend_name}, 2 passes; "
        f"{len(compute)} Compute Instance products, {len(prices)} on-demand prices")
print(json.dumps({"seconds": seconds, "peak_rss_mb": peak_rss_mb(), "note": note}))
"""
)

_SCRIPTS = {"json.load": _JSON_LOAD, "ijson": _IJSON}


@dataclass(frozen=True)
class Baseline:
    kind: str
    seconds: float | None  # None: it failed or did not finish
    peak_rss_mb: float | None
    mb_per_s: float | None
    note: str

    def line(self) -> str:
        if self.seconds is None or self.peak_rss_mb is None or self.mb_per_s is None:
            return f"{self.kind:<10} {self.note}"
        return (
            f"{self.kind:<10} {self.seconds:7.1f} s {self.mb_per_s:7.1f} MB/s "
            f"{self.peak_rss_mb:8.0f} MB peak RSS   {self.note}"
        )


def measure(kind: str, path: Path, timeout: float) -> Baseline:
    """Run one baseline on `path` in a fresh subprocess, giving up after `timeout` seconds."""
    if kind not in _SCRIPTS:
        raise ValueError(f"unknown baseline {kind!r}; known: {', '.join(KINDS)}")
    size_mb = Path(path).stat().st_size / 1e6
    try:
        done = subprocess.run(
            [sys.executable, "-c", _SCRIPTS[kind], str(path)],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:  # run() has killed the child
        return Baseline(kind, None, None, None, f"did not finish in {timeout:g} s")
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return Baseline(kind, None, None, None, f"failed ({done.returncode}): {last}")
    out = json.loads(done.stdout.strip().splitlines()[-1])
    seconds = out["seconds"]
    return Baseline(kind, seconds, out["peak_rss_mb"], size_mb / seconds, out["note"])


def measure_all(path: Path, timeout: float) -> list[Baseline]:
    return [measure(kind, path, timeout) for kind in KINDS]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", type=Path)
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per baseline")
    parser.add_argument("--kind", choices=KINDS, action="append", help="default: all")
    args = parser.parse_args(argv)
    print(f"{args.path}: {args.path.stat().st_size / 1e6:.1f} MB")
    for kind in args.kind or KINDS:
        print(measure(kind, args.path, args.timeout).line(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
