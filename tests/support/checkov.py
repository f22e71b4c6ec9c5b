"""checkov (test-only), in a venv of its own inside kopter's (`make test` makes it from
requirements/checkov.txt): it pins packages below what kopter's dependencies need."""

import sys
from pathlib import Path

CHECKOV = Path(sys.prefix) / "checkov" / "bin" / "checkov"
MISSING = f"checkov is missing: make {CHECKOV}"
