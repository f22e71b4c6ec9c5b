"""The real AWS samples in tests/fixtures/real/ (copied byte for byte; PROVENANCE.md there)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "real"
CLOUD_SNITCH_FILE = next((FIXTURES / "cloudtrail" / "AWSLogs").rglob("*.json.gz"))
STRATUS_DIR = FIXTURES / "cloudtrail" / "stratus-red-team"  # its AWS detonation logs
STRATUS_FILE = STRATUS_DIR / "aws.credential-access.ec2-get-password-data.json"
