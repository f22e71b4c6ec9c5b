"""The daily audit's rules: data, each beside the small predicate it needs.

A rule names the calls it looks at (event source and name), the outcome it wants (succeeded,
failed, either), an optional predicate on one call, and how many of one principal's calls it
takes to report them. The digest indexes the rules by call, so adding a rule is one entry here
(and a test), not another pass over the day.

Each rule carries the MITRE ATT&CK tactic and technique it detects, and the Stratus Red Team
techniques (https://stratus-red-team.cloud) whose detonation it catches: the tests detonate
those logs. "Another account" is one the tenant has not registered (nor the call's own).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Protocol

from kopter.cloudtrail import grants
from kopter.cloudtrail import techniques as mitre
from kopter.cloudtrail.techniques import Technique

SUCCEEDED, FAILED, EITHER = "succeeded", "failed", "either"
_API_VERSION = re.compile(r"20\d{6}(?:v\d+)?$")  # Lambda's "UpdateFunctionCode20150331v2"


class Event(Protocol):
    """What the predicates read of one call: an audit-log item (the daily audit), or a raw
    record as CloudTrail delivers it (``RecordEvent``, at ingest)."""

    @property
    def event_source(self) -> str: ...
    @property
    def event_name(self) -> str: ...
    @property
    def account_id(self) -> str: ...
    @property
    def error_code(self) -> str | None: ...
    @property
    def event_type(self) -> str | None: ...
    @property
    def principal_type(self) -> str | None: ...
    @property
    def principal_arn(self) -> str | None: ...
    @property
    def invoked_by(self) -> str | None: ...
    @property
    def mfa_used(self) -> str | None: ...
    @property
    def request(self) -> str | None: ...  # JSON text
    @property
    def response(self) -> str | None: ...


class RecordEvent:
    """A raw record seen through the audit log's attribute names (``records.items`` makes the
    same values): what kopter's rules read of a record as it is ingested. A field of another
    type than CloudTrail writes is absent."""

    __slots__ = (
        "account_id",
        "error_code",
        "event_name",
        "event_source",
        "event_type",
        "invoked_by",
        "mfa_used",
        "principal_arn",
        "principal_type",
    )
    # Call.of_record hands the predicates the record's own objects instead.
    request = response = None

    def __init__(self, record: Mapping[str, Any]) -> None:
        identity = _object(record.get("userIdentity"))
        self.event_source = _text(record.get("eventSource")) or ""
        self.event_name = _text(record.get("eventName")) or ""
        self.account_id = (
            _text(record.get("recipientAccountId")) or _text(identity.get("accountId")) or "unknown"
        )
        self.error_code = _text(record.get("errorCode")) or None
        self.event_type = _text(record.get("eventType")) or None
        self.principal_type = _text(identity.get("type")) or None
        self.principal_arn = _text(identity.get("arn")) or None
        self.invoked_by = _text(identity.get("invokedBy")) or None
        self.mfa_used = None
        if self.event_name == "ConsoleLogin":
            self.mfa_used = _text(_object(record.get("additionalEventData")).get("MFAUsed"))


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


class Call:
    """One call as the predicates see it: request and response parsed once, on demand."""

    __slots__ = ("__dict__", "error", "event", "name", "registered", "source")

    def __init__(self, event: Event, registered: frozenset[str]) -> None:
        self.event = event
        self.registered = registered
        # Read once: a model's attribute costs a descriptor call, and every rule asks.
        self.source, self.error = event.event_source, event.error_code
        self.name = name_of(self.source, event.event_name)

    @classmethod
    def of_record(cls, record: Mapping[str, Any], registered: frozenset[str]) -> Call:
        """A raw record's call: its request and response are objects already."""
        call = cls(RecordEvent(record), registered)
        call.__dict__["request"] = _object(record.get("requestParameters"))
        call.__dict__["response"] = _object(record.get("responseElements"))
        return call

    @cached_property
    def own(self) -> frozenset[str]:
        """The tenant's accounts, and the call's own."""
        return self.registered | {self.event.account_id}

    @cached_property
    def request(self) -> dict[str, Any]:
        return _json(self.event.request)

    @cached_property
    def response(self) -> dict[str, Any]:
        return _json(self.event.response)


def _json(text: str | None) -> dict[str, Any]:
    """A stored request or response; {} when absent, or cut to fit the item (``truncated``)."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


Predicate = Callable[[Call], bool]
Keys = Callable[[Call], Iterable[str]]


@dataclass(frozen=True)
class Rule:
    name: str
    severity: str  # low, medium, high, critical: high and above notify
    technique: Technique
    description: str  # why it fires, in one line: a notification's title
    calls: frozenset[tuple[str, str]] = frozenset()  # (event source, name); empty: every call
    outcome: str = SUCCEEDED
    when: Predicate | None = None
    threshold: int = 1  # calls of one principal it takes, or distinct ``keys`` when given
    keys: Keys | None = None  # what the threshold counts: e.g. the secrets read
    # Reported only when, that day, a call matching this came from one of the same addresses.
    same_address_as: Predicate | None = None
    stratus: tuple[str, ...] = ()  # Stratus Red Team techniques it catches

    def matches(self, call: Call) -> bool:
        if self.outcome != EITHER and bool(call.error) != (self.outcome == FAILED):
            return False
        return self.when is None or self.when(call)


def name_of(source: str, name: str) -> str:
    """The API's name without the version some services append to it."""
    return _API_VERSION.sub("", name) if source == LAMBDA else name


def on(source: str, *names: str) -> frozenset[tuple[str, str]]:
    return frozenset((source, name) for name in names)


# --- predicates -------------------------------------------------------------------------------

BEDROCK, CLOUDTRAIL, EC2 = "bedrock.amazonaws.com", "cloudtrail.amazonaws.com", "ec2.amazonaws.com"
IAM, LAMBDA, RDS = "iam.amazonaws.com", "lambda.amazonaws.com", "rds.amazonaws.com"
S3, SAGEMAKER, SECRETS = (
    "s3.amazonaws.com",
    "sagemaker.amazonaws.com",
    "secretsmanager.amazonaws.com",
)
SES, SSM, STS = "ses.amazonaws.com", "ssm.amazonaws.com", "sts.amazonaws.com"
INSTANCE_CONNECT = "ec2-instance-connect.amazonaws.com"

IAM_CHANGES = (
    "CreateUser", "DeleteUser", "UpdateUser",
    "CreateLoginProfile", "UpdateLoginProfile", "DeleteLoginProfile",
    "CreateAccessKey", "UpdateAccessKey", "DeleteAccessKey",
    "AddUserToGroup", "RemoveUserFromGroup",
    "AttachUserPolicy", "DetachUserPolicy", "PutUserPolicy", "DeleteUserPolicy",
    "AttachGroupPolicy", "DetachGroupPolicy", "PutGroupPolicy", "DeleteGroupPolicy",
    "AttachRolePolicy", "DetachRolePolicy", "PutRolePolicy", "DeleteRolePolicy",
    "UpdateAssumeRolePolicy",
    "CreatePolicy", "DeletePolicy", "CreatePolicyVersion", "DeletePolicyVersion",
    "SetDefaultPolicyVersion",
)  # fmt: skip
ADMIN_POLICIES = frozenset({"policy/AdministratorAccess", "policy/IAMFullAccess"})
# GPU, machine-learning, FPGA, HPC and very large memory families: what miners launch.
UNUSUAL_FAMILIES = frozenset({"p", "g", "gr", "inf", "trn", "dl", "f", "vt", "hpc", "x", "u"})
SHELL_DOCUMENTS = frozenset({"AWS-RunShellScript", "AWS-RunPowerShellScript"})
SHORT_EXPIRATION_DAYS = 7
DENIED_BURST = 10
BULK_SECRETS = 10


def denied(code: str | None) -> bool:
    """AccessDenied, AccessDeniedException, Client.UnauthorizedOperation and the like."""
    return code is not None and (code.startswith("AccessDenied") or "Unauthorized" in code)


def _root_use(c: Call) -> bool:
    # Calls a service makes on the root user's behalf (invokedBy, service events) are not use.
    e = c.event
    return e.principal_type == "Root" and not e.invoked_by and e.event_type != "AwsServiceEvent"


def _console_login_without_mfa(c: Call) -> bool:
    # IAM users and root only: federated and SSO sign-ins always say "No", their MFA being the
    # identity provider's.
    e = c.event
    return (
        e.principal_type in ("IAMUser", "Root")
        and e.mfa_used == "No"
        and c.response.get("ConsoleLogin") == "Success"
    )


def _leaves(value: Any, key: str = "") -> Iterable[tuple[str, Any]]:
    """Every (key, scalar) in a JSON document, however deep."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _leaves(v, k)
    elif isinstance(value, list):
        for v in value:
            yield from _leaves(v, key)
    else:
        yield key, value


def _opens_to_world(c: Call) -> bool:
    # ipPermissions.items[].ipRanges.items[].cidrIp, ipv6Ranges….cidrIpv6, or the flat cidrIp
    return any(
        key in ("cidrIp", "cidrIpv6") and grants.is_whole_internet(value)
        for key, value in _leaves(c.request)
    )


def _permission_added_outside(attribute: str) -> Predicate:
    """An EBS snapshot's createVolumePermission or an AMI's launchPermission given to group
    ``all`` or to another account."""

    def given(c: Call) -> bool:
        permission = c.request.get(attribute)
        added = permission.get("add") if isinstance(permission, dict) else None
        grantees = [v for k, v in _leaves(added) if k in ("group", "userId")]
        return bool(grants.outside(grantees, c.own))

    return given


def _rds_snapshot_shared(c: Call) -> bool:
    request = c.request
    values = request.get("valuesToAdd")
    return (
        request.get("attributeName") == "restore"
        and isinstance(values, list)
        and bool(grants.outside(values, c.own))
    )


def _trusts_another_account(c: Call) -> bool:
    policy = c.request.get("assumeRolePolicyDocument") or c.request.get("policyDocument")
    return bool(grants.outside(grants.policy_grantees(policy), c.own))


def _bucket_policy_grants_outside(c: Call) -> bool:
    return bool(grants.outside(grants.policy_grantees(c.request.get("bucketPolicy")), c.own))


def _function_permission_outside(c: Call) -> bool:
    principal = c.request.get("principal")  # an account, an ARN, "*" or a service's name
    return bool(grants.outside([principal], c.own))


def _for_another_user(c: Call) -> bool:
    """An IAM call naming a user other than the caller (without ``userName``, it is the
    caller's own)."""
    target = c.request.get("userName")
    return bool(target) and target != grants.user_name(c.event.principal_arn)


def _admin_policy(c: Call) -> bool:
    arn = grants.Arn.parse(str(c.request.get("policyArn") or ""))
    return arn is not None and arn.account == "aws" and arn.resource in ADMIN_POLICIES


def _unusual_instance_type(c: Call) -> bool:
    family, _, size = str(c.request.get("instanceType") or "").partition(".")
    letters = re.match(r"[a-z]*", family)
    xlarge = re.fullmatch(r"(\d+)xlarge", size)
    return bool(
        (letters and letters.group() in UNUSUAL_FAMILIES)
        or size == "metal"
        or (xlarge and int(xlarge.group(1)) >= 24)
    )


def _short_expiration(c: Call) -> bool:
    """A lifecycle rule expiring objects within days: how a trail's bucket is emptied."""
    for key, value in _expirations(c.request):
        try:
            if key == "Days" and int(value) <= SHORT_EXPIRATION_DAYS:
                return True
        except (TypeError, ValueError):
            continue
    return False


def _expirations(value: Any) -> Iterable[tuple[str, Any]]:
    if isinstance(value, dict):
        for k, v in value.items():
            if k in ("Expiration", "NoncurrentVersionExpiration") and isinstance(v, dict):
                yield from v.items()
            else:
                yield from _expirations(v)
    elif isinstance(value, list):
        for v in value:
            yield from _expirations(v)


def _request_has(*keys: str) -> Predicate:
    wanted = {k.lower() for k in keys}
    return lambda c: any(k.lower() in wanted and v not in (None, "") for k, v in c.request.items())


def _request_is(key: str, values: Iterable[str]) -> Predicate:
    wanted = frozenset(values)
    return lambda c: isinstance(value := c.request.get(key), str) and value in wanted


def _decrypted_parameters(c: Call) -> Iterable[str]:
    if c.request.get("withDecryption") is not True:
        return ()
    names = c.request.get("names") or [c.request.get("name") or c.request.get("path")]
    return [str(n) for n in names if n] if isinstance(names, list) else [str(names)]


def _instance_credentials(c: Call) -> bool:
    return grants.instance_session(c.event.principal_arn)


def _long_term_identity(c: Call) -> bool:
    # A person's workstation: an IAM user's or root's keys. Not other sessions, which share
    # NAT gateways with instances.
    return c.event.principal_type in ("IAMUser", "Root")


def _key(name: str) -> Keys:
    return lambda c: [str(c.request.get(name))]


def _call_name(c: Call) -> Iterable[str]:
    return [f"{c.source}:{c.name}"]


_STOP_TRAIL = on(CLOUDTRAIL, "StopLogging", "DeleteTrail")

# Discovery an instance's own work seldom needs; DescribeInstances, GetCallerIdentity are routine.
INSTANCE_DISCOVERY = (
    on(S3, "ListBuckets")
    | on(IAM, "GetAccountSummary", "ListRoles", "ListUsers", "GetAccountAuthorizationDetails")
    | on(EC2, "DescribeSnapshots")
    | on(CLOUDTRAIL, "DescribeTrails")
    | on("guardduty.amazonaws.com", "ListDetectors")
)

# fmt: off
RULES: tuple[Rule, ...] = (
    # Failed calls too: either way someone holds, or tries, the root credentials.
    Rule("root-account-use", "high", mitre.CLOUD_ACCOUNTS, "Root user activity",
         outcome=EITHER, when=_root_use),
    Rule("console-login-without-mfa", "high", mitre.CLOUD_SIGN_IN, "Console sign-in without MFA",
         on("signin.amazonaws.com", "ConsoleLogin"), when=_console_login_without_mfa,
         stratus=("aws.initial-access.console-login-without-mfa",)),
    Rule("iam-change", "medium", mitre.ACCOUNT_MANIPULATION,
         "IAM users, access keys or policies changed", on(IAM, *IAM_CHANGES)),
    Rule("access-key-for-another-user", "high", mitre.CLOUD_CREDENTIALS,
         "An access key created for another IAM user", on(IAM, "CreateAccessKey"),
         when=_for_another_user, stratus=("aws.persistence.iam-backdoor-user",)),
    Rule("login-profile-for-another-user", "high", mitre.CLOUD_CREDENTIALS,
         "A console password given to another IAM user", on(IAM, "CreateLoginProfile"),
         when=_for_another_user, stratus=("aws.persistence.iam-create-user-login-profile",)),
    Rule("password-of-another-user-changed", "high", mitre.PASSWORD_RESET,
         "Another IAM user's console password changed", on(IAM, "UpdateLoginProfile"),
         when=_for_another_user,
         stratus=("aws.privilege-escalation.iam-update-user-login-profile",)),
    Rule("admin-policy-attached", "high", mitre.CLOUD_ROLES,
         "AdministratorAccess or IAMFullAccess attached to a user, group or role",
         on(IAM, "AttachUserPolicy", "AttachGroupPolicy", "AttachRolePolicy"),
         when=_admin_policy, stratus=("aws.persistence.iam-create-admin-user",)),
    Rule("role-trusts-another-account", "critical", mitre.CLOUD_ROLES,
         "A role made assumable from another account, or by anyone",
         on(IAM, "CreateRole", "UpdateAssumeRolePolicy"), when=_trusts_another_account,
         stratus=("aws.persistence.iam-backdoor-role", "aws.persistence.iam-create-backdoor-role")),
    Rule("federation-token", "high", mitre.CLOUD_CREDENTIALS,
         "Temporary credentials made with GetFederationToken", on(STS, "GetFederationToken"),
         stratus=("aws.persistence.sts-federation-token",)),
    Rule("roles-anywhere-trust-anchor", "high", mitre.CLOUD_CREDENTIALS,
         "An IAM Roles Anywhere trust anchor created or changed",
         on("rolesanywhere.amazonaws.com", "CreateTrustAnchor", "UpdateTrustAnchor"),
         stratus=("aws.persistence.rolesanywhere-create-trust-anchor",)),
    Rule("lambda-invocable-from-outside", "high", mitre.EVENT_TRIGGERED,
         "A Lambda function made invocable by anyone or from another account",
         on(LAMBDA, "AddPermission"), when=_function_permission_outside,
         stratus=("aws.persistence.lambda-backdoor-function",)),
    Rule("lambda-layer-added", "medium", mitre.EVENT_TRIGGERED,
         "Layers (extensions) set on a Lambda function",
         on(LAMBDA, "UpdateFunctionConfiguration", "CreateFunction"), when=_request_has("layers"),
         stratus=("aws.persistence.lambda-layer-extension",)),
    Rule("lambda-code-replaced", "medium", mitre.EVENT_TRIGGERED,
         "A Lambda function's code replaced",
         on(LAMBDA, "UpdateFunctionCode"), stratus=("aws.persistence.lambda-overwrite-code",)),
    Rule("security-group-open-to-world", "high", mitre.CLOUD_FIREWALL,
         "Security group ingress opened to the whole internet (a /0)",
         on(EC2, "AuthorizeSecurityGroupIngress"), when=_opens_to_world,
         stratus=("aws.exfiltration.ec2-security-group-open-port-22-ingress",)),
    Rule("cloudtrail-stopped", "critical", mitre.CLOUD_LOGS,
         "CloudTrail logging stopped or a trail deleted",
         _STOP_TRAIL, stratus=("aws.defense-evasion.cloudtrail-stop",
                               "aws.defense-evasion.cloudtrail-delete")),
    # Denied, it still says someone tried to blind the audit log.
    Rule("cloudtrail-stop-attempt", "high", mitre.CLOUD_LOGS,
         "Attempt to stop CloudTrail or delete a trail (it failed)", _STOP_TRAIL, FAILED),
    Rule("cloudtrail-changed", "high", mitre.CLOUD_LOGS,
         "A trail's destination or event selectors changed",
         on(CLOUDTRAIL, "UpdateTrail", "PutEventSelectors", "PutInsightSelectors"),
         stratus=("aws.defense-evasion.cloudtrail-event-selectors",)),
    Rule("bucket-expires-objects-quickly", "high", mitre.CLOUD_LOGS,
         f"A bucket lifecycle rule expiring objects within {SHORT_EXPIRATION_DAYS} days",
         on(S3, "PutBucketLifecycle", "PutBucketLifecycleConfiguration"), when=_short_expiration,
         stratus=("aws.defense-evasion.cloudtrail-lifecycle-rule",)),
    Rule("dns-query-logs-deleted", "high", mitre.CLOUD_LOGS,
         "Route 53 Resolver query logging removed",
         on("route53resolver.amazonaws.com", "DeleteResolverQueryLogConfig",
            "DisassociateResolverQueryLogConfig"),
         stratus=("aws.defense-evasion.dns-delete-logs",)),
    Rule("flow-logs-deleted", "high", mitre.CLOUD_LOGS, "VPC flow logs deleted",
         on(EC2, "DeleteFlowLogs"), stratus=("aws.defense-evasion.vpc-remove-flow-logs",)),
    # Denied or not: an account trying to leave its organization escapes its guardrails.
    Rule("organization-left", "high", mitre.LEAVE_ORGANIZATION,
         "An account left, or tried to leave, its organization",
         on("organizations.amazonaws.com", "LeaveOrganization"), EITHER,
         stratus=("aws.defense-evasion.organizations-leave",)),
    Rule("snapshot-shared-outside", "critical", mitre.TRANSFER_TO_CLOUD_ACCOUNT,
         "An EBS snapshot shared publicly or with another account",
         on(EC2, "ModifySnapshotAttribute"),
         when=_permission_added_outside("createVolumePermission"),
         stratus=("aws.exfiltration.ec2-share-ebs-snapshot",)),
    Rule("ami-shared-outside", "critical", mitre.TRANSFER_TO_CLOUD_ACCOUNT,
         "An AMI shared publicly or with another account",
         on(EC2, "ModifyImageAttribute"), when=_permission_added_outside("launchPermission"),
         stratus=("aws.exfiltration.ec2-share-ami",)),
    Rule("rds-snapshot-shared-outside", "critical", mitre.TRANSFER_TO_CLOUD_ACCOUNT,
         "An RDS snapshot shared publicly or with another account",
         on(RDS, "ModifyDBSnapshotAttribute", "ModifyDBClusterSnapshotAttribute"),
         when=_rds_snapshot_shared, stratus=("aws.exfiltration.rds-share-snapshot",)),
    Rule("bucket-policy-grants-outside", "critical", mitre.TRANSFER_TO_CLOUD_ACCOUNT,
         "A bucket policy granting another account, or anyone, access",
         on(S3, "PutBucketPolicy"), when=_bucket_policy_grants_outside,
         stratus=("aws.exfiltration.s3-backdoor-bucket-policy",)),
    Rule("secrets-read-in-bulk", "high", mitre.SECRETS_STORES,
         f"{BULK_SECRETS} or more Secrets Manager secrets read by one principal",
         on(SECRETS, "GetSecretValue"), threshold=BULK_SECRETS, keys=_key("secretId"),
         stratus=("aws.credential-access.secretsmanager-retrieve-secrets",)),
    Rule("secrets-batch-read", "high", mitre.SECRETS_STORES,
         "Secrets Manager secrets read in a batch",
         on(SECRETS, "BatchGetSecretValue"),
         stratus=("aws.credential-access.secretsmanager-batch-retrieve-secrets",)),
    Rule("parameters-decrypted-in-bulk", "high", mitre.SECRETS_STORES,
         f"{BULK_SECRETS} or more SSM SecureString parameters decrypted by one principal",
         on(SSM, "GetParameter", "GetParameters", "GetParametersByPath"),
         threshold=BULK_SECRETS, keys=_decrypted_parameters,
         stratus=("aws.credential-access.ssm-retrieve-securestring-parameters",)),
    Rule("password-data-read", "medium", mitre.UNSECURED_CREDENTIALS,
         "EC2 Windows password data requested for 5 or more instances",
         on(EC2, "GetPasswordData"), EITHER, threshold=5, keys=_key("instanceId"),
         stratus=("aws.credential-access.ec2-get-password-data",)),
    Rule("instance-credentials-used-elsewhere", "critical", mitre.INSTANCE_METADATA,
         "An EC2 instance's role credentials used from an address an IAM user called from",
         outcome=EITHER, when=_instance_credentials, same_address_as=_long_term_identity,
         stratus=("aws.credential-access.ec2-steal-instance-credentials",)),
    Rule("user-data-read", "medium", mitre.INFRASTRUCTURE_DISCOVERY,
         "EC2 user data requested for 5 or more instances",
         on(EC2, "DescribeInstanceAttribute"), EITHER, _request_is("attribute", ["userData"]),
         threshold=5, keys=_key("instanceId"), stratus=("aws.discovery.ec2-download-user-data",)),
    Rule("discovery-from-instance", "medium", mitre.INFRASTRUCTURE_DISCOVERY,
         "An EC2 instance's credentials enumerating IAM, S3, trails or detectors (3 or more APIs)",
         INSTANCE_DISCOVERY, EITHER, _instance_credentials, threshold=3, keys=_call_name,
         stratus=("aws.discovery.ec2-enumerate-from-instance",)),
    Rule("ses-enumerated", "medium", mitre.SERVICE_DISCOVERY,
         "SES sending status, quota and identities enumerated (3 or more APIs)",
         on(SES, "GetAccountSendingEnabled", "GetSendQuota", "ListIdentities",
            "GetIdentityVerificationAttributes"), EITHER, threshold=3, keys=_call_name,
         stratus=("aws.discovery.ses-enumerate",)),
    Rule("unusual-instance-type", "medium", mitre.RESOURCE_HIJACKING,
         "GPU, machine-learning, HPC or very large instances launched (or tried)",
         on(EC2, "RunInstances"), EITHER, _unusual_instance_type,
         stratus=("aws.execution.ec2-launch-unusual-instances",)),
    Rule("user-data-changed", "high", mitre.SCRIPTING, "An instance's user data changed",
         on(EC2, "ModifyInstanceAttribute"), when=_request_has("userData"),
         stratus=("aws.execution.ec2-user-data",)),
    Rule("notebook-lifecycle-changed", "medium", mitre.SCRIPTING,
         "A SageMaker notebook instance given a lifecycle configuration",
         on(SAGEMAKER, "UpdateNotebookInstance"), when=_request_has("lifecycleConfigName"),
         stratus=("aws.execution.sagemaker-update-lifecycle-config",)),
    Rule("ssm-shell-command", "medium", mitre.CLOUD_ADMINISTRATION,
         "A shell command sent to instances through SSM", on(SSM, "SendCommand"),
         when=_request_is("documentName", SHELL_DOCUMENTS),
         stratus=("aws.execution.ssm-send-command",)),
    Rule("ssm-session", "medium", mitre.CLOUD_ADMINISTRATION,
         "An SSM session started on an instance",
         on(SSM, "StartSession"), stratus=("aws.execution.ssm-start-session",)),
    Rule("instance-connect-key", "medium", mitre.REMOTE_SERVICES,
         "An SSH key pushed to an instance with EC2 Instance Connect",
         on(INSTANCE_CONNECT, "SendSSHPublicKey"),
         stratus=("aws.lateral-movement.ec2-instance-connect",)),
    Rule("serial-console-key", "high", mitre.REMOTE_SERVICES,
         "Serial console access enabled, or an SSH key pushed to an instance's serial console",
         on(INSTANCE_CONNECT, "SendSerialConsoleSSHPublicKey")
         | on(EC2, "EnableSerialConsoleAccess"),
         stratus=("aws.lateral-movement.ec2-serial-console-send-ssh-public-key",)),
    Rule("bedrock-model-access-enabled", "high", mitre.RESOURCE_HIJACKING,
         "Access to Bedrock foundation models requested or agreed",
         on(BEDROCK, "PutUseCaseForModelAccess", "CreateFoundationModelAgreement",
            "PutFoundationModelEntitlement"), stratus=("aws.impact.bedrock-invoke-model",)),
    Rule("bedrock-model-invoked", "medium", mitre.RESOURCE_HIJACKING, "A Bedrock model invoked",
         on(BEDROCK, "InvokeModel", "InvokeModelWithResponseStream", "Converse", "ConverseStream"),
         stratus=("aws.impact.bedrock-invoke-model",)),
    Rule("ami-deregistered", "medium", mitre.DATA_DESTRUCTION, "An AMI deregistered",
         on(EC2, "DeregisterImage"), stratus=("aws.impact.ec2-deregister-ami",)),
    # Many denials from one principal: permissions being probed, or a broken deployment.
    Rule("denied-calls-burst", "medium", mitre.INFRASTRUCTURE_DISCOVERY,
         f"{DENIED_BURST} or more denied calls by one principal", outcome=FAILED,
         when=lambda c: denied(c.error), threshold=DENIED_BURST),
)
# fmt: on
ORDER = {rule.name: i for i, rule in enumerate(RULES)}
