"""`make bench`: kopter's image, built from nothing as `make image` builds it (scripts/build-image:
the Debian base from Debian's packages, the wheels the runtime lock pins, then podman build).
Its size beside the aim of 250 MB, the base's and kopter's layers, how long the build took, and
how long a container takes from `podman run` to the answer of `kopter --help` (figures only).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import machine  # noqa: E402
from tests.support.containers import PODMAN, RUN_OPTIONS  # noqa: E402

AIM_BYTES = 250 * 1000 * 1000
STARTS = 5


def podman(*args: str) -> str:
    return subprocess.run(
        [*PODMAN, *args], capture_output=True, text=True, check=True, timeout=300
    ).stdout


def main() -> int:
    print(machine())
    with tempfile.TemporaryDirectory() as tmp:
        iid = Path(tmp) / "iid"
        started = time.monotonic()
        subprocess.run(
            # A tag of its own: the operator's kopter:VERSION stays as `make image` left it.
            [ROOT / "scripts" / "build-image", "--iidfile", iid, "--tag", "kopter-bench:latest"],
            check=True,
            cwd=ROOT,
            timeout=3000,
        )
        built = time.monotonic() - started
        image = iid.read_text().strip()
    size = int(podman("image", "inspect", "--format", "{{.Size}}", image))
    # Newest first: the layers this Containerfile adds, down to the imported base.
    layers = [
        int(layer["size"]) for layer in json.loads(podman("history", "--format", "json", image))
    ]
    starts = []
    for _ in range(STARTS):
        began = time.monotonic()
        subprocess.run(
            [*PODMAN, "run", "--rm", *RUN_OPTIONS, image, "kopter", "--help"],
            capture_output=True,
            check=True,
        )
        starts.append(time.monotonic() - began)
    ok = size < AIM_BYTES
    print(
        f"\nimage: {size / 1e6:.0f} MB; aim under {AIM_BYTES / 1e6:.0f} MB "
        f"{'ok' if ok else 'MISSED'}\n"
        f"   Debian base {layers[-1] / 1e6:.0f} MB, kopter and its dependencies (the venv) "
        f"{sum(layers[:-1]) / 1e6:.0f} MB\n"
        f"   built from nothing in {built:.0f} s (base, wheels and image)\n"
        f"   `podman run … kopter --help`: {statistics.median(starts):.2f} s median of {STARTS}"
        " (figures only)"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
