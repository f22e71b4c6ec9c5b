"""The MITRE ATT&CK techniques the daily audit's rules detect (https://attack.mitre.org)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Technique:
    tactic: str  # MITRE ATT&CK tactic
    id: str  # MITRE ATT&CK technique id, e.g. T1562.008
    name: str

    def as_dict(self) -> dict[str, str]:
        return {"tactic": self.tactic, "id": self.id, "name": self.name}


CREDENTIAL_ACCESS, DEFENSE_EVASION, DISCOVERY = "Credential Access", "Defense Evasion", "Discovery"
EXECUTION, EXFILTRATION, IMPACT = "Execution", "Exfiltration", "Impact"
INITIAL_ACCESS, LATERAL_MOVEMENT, PERSISTENCE = "Initial Access", "Lateral Movement", "Persistence"
PRIVILEGE_ESCALATION = "Privilege Escalation"

CLOUD_ACCOUNTS = Technique(PRIVILEGE_ESCALATION, "T1078.004", "Valid Accounts: Cloud Accounts")
CLOUD_SIGN_IN = Technique(INITIAL_ACCESS, "T1078.004", "Valid Accounts: Cloud Accounts")
ACCOUNT_MANIPULATION = Technique(PERSISTENCE, "T1098", "Account Manipulation")
CLOUD_CREDENTIALS = Technique(
    PERSISTENCE, "T1098.001", "Account Manipulation: Additional Cloud Credentials"
)
CLOUD_ROLES = Technique(PERSISTENCE, "T1098.003", "Account Manipulation: Additional Cloud Roles")
EVENT_TRIGGERED = Technique(PERSISTENCE, "T1546", "Event Triggered Execution")
PASSWORD_RESET = Technique(PRIVILEGE_ESCALATION, "T1098", "Account Manipulation")
CLOUD_LOGS = Technique(
    DEFENSE_EVASION, "T1562.008", "Impair Defenses: Disable or Modify Cloud Logs"
)
CLOUD_FIREWALL = Technique(
    DEFENSE_EVASION, "T1562.007", "Impair Defenses: Disable or Modify Cloud Firewall"
)
LEAVE_ORGANIZATION = Technique(DEFENSE_EVASION, "T1666", "Modify Cloud Resource Hierarchy")
UNSECURED_CREDENTIALS = Technique(CREDENTIAL_ACCESS, "T1552", "Unsecured Credentials")
INSTANCE_METADATA = Technique(
    CREDENTIAL_ACCESS, "T1552.005", "Unsecured Credentials: Cloud Instance Metadata API"
)
SECRETS_STORES = Technique(
    CREDENTIAL_ACCESS,
    "T1555.006",
    "Credentials from Password Stores: Cloud Secrets Management Stores",
)
INFRASTRUCTURE_DISCOVERY = Technique(DISCOVERY, "T1580", "Cloud Infrastructure Discovery")
SERVICE_DISCOVERY = Technique(DISCOVERY, "T1526", "Cloud Service Discovery")
SCRIPTING = Technique(EXECUTION, "T1059", "Command and Scripting Interpreter")
CLOUD_ADMINISTRATION = Technique(EXECUTION, "T1651", "Cloud Administration Command")
TRANSFER_TO_CLOUD_ACCOUNT = Technique(EXFILTRATION, "T1537", "Transfer Data to Cloud Account")
RESOURCE_HIJACKING = Technique(IMPACT, "T1496", "Resource Hijacking")
DATA_DESTRUCTION = Technique(IMPACT, "T1485", "Data Destruction")
REMOTE_SERVICES = Technique(LATERAL_MOVEMENT, "T1021.004", "Remote Services: SSH")
