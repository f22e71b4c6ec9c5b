"""The real AWS samples in ../shared/fixtures/real/ (see PROVENANCE.md there)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT.parent / "shared" / "fixtures" / "real"
CLOUD_SNITCH_FILE = next((FIXTURES / "cloudtrail" / "AWSLogs").rglob("*.json.gz"))
STRATUS_FILE = FIXTURES / "cloudtrail" / "stratus-red-team_ec2-get-password-data.json"
