"""Customers (tenants) and the AWS accounts they connect.

An account id belongs to at most one tenant. Registration claims it in the Global table
(``account-owner#<id>``) in the same transaction that writes the account, so two tenants racing
for one account id cannot both win, and the ingest path can find an account's tenant with one
consistent read.
"""

from __future__ import annotations

import re
import secrets
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from pynamodb.exceptions import DoesNotExist, TransactWriteError
from pynamodb.expressions.update import Action
from pynamodb.transactions import TransactWrite

from kopter import dynamo, probes, times
from kopter.crossaccount import AssumeRoleFailed, CrossAccountSessions, Target
from kopter.errors import KopterError, NotFound, Refused, aws_error
from kopter.iam import customer
from kopter.notifications import Notice
from kopter.settings import Settings
from kopter.tables import AwsAccount, GlobalItem, Tenant, connection

ACCOUNT_ID = re.compile(r"^\d{12}$")
ROLE_ARN = re.compile(r"^arn:aws(?:-cn|-us-gov)?:iam::(\d{12}):role/[\w+=,.@/-]{1,512}$")
BUCKET = re.compile(r"^(?!xn--)(?!.*\.\.)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
TENANT_NAME = re.compile(r"^[\w .@+-]{1,128}$")


def _now() -> datetime:
    return datetime.now(UTC)


# --- tenants ----------------------------------------------------------------------------------


def add_tenant(name: str, tenant_id: str | None = None) -> Tenant:
    """Register a customer. ``tenant_id`` is their identity id; a new one is made when absent."""
    name = name.strip()
    if not TENANT_NAME.match(name):
        raise Refused(f"tenant name {name!r}: use 1 to 128 letters, digits, spaces or .@+-_")
    if any(t.name == name for t in list_tenants()):
        raise Refused(f"a tenant named {name!r} already exists")
    tenant_id = tenant_id or str(uuid.uuid4())
    if not re.match(r"^[\w:.@-]{1,128}$", tenant_id) or "#" in tenant_id:
        raise Refused(f"tenant id {tenant_id!r}: use 1 to 128 of A-Z a-z 0-9 : . @ - _")
    tenant = Tenant(tenant_id, name=name, created_at=_now())
    if not dynamo.put_if_absent(tenant):
        raise Refused(f"tenant id {tenant_id} already exists")
    return tenant


def list_tenants() -> list[Tenant]:
    return sorted(Tenant.scan(), key=lambda t: (t.created_at, t.tenant_id))


def resolve_tenant(ref: str) -> Tenant:
    """A tenant by id, or by its (unique) name."""
    try:
        return Tenant.get(ref)
    except DoesNotExist:
        pass
    named = [t for t in list_tenants() if t.name == ref]
    if not named:
        raise NotFound(f"no tenant with id or name {ref!r} (see `kopter tenants list`)")
    return named[0]


# --- accounts ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class AccountRequest:
    account_id: str
    role_arn: str
    regions: tuple[str, ...]
    cloudtrail_bucket: str | None = None
    cloudtrail_prefix: str | None = None


@cache
def known_regions() -> frozenset[str]:
    session = boto3.session.Session()
    return frozenset(
        region
        for partition in ("aws", "aws-cn", "aws-us-gov")
        for region in session.get_available_regions("ec2", partition_name=partition)
    )


def validate(request: AccountRequest) -> AccountRequest:
    if not ACCOUNT_ID.match(request.account_id):
        raise Refused(f"account id {request.account_id!r} is not 12 digits")
    match = ROLE_ARN.match(request.role_arn)
    if not match:
        raise Refused(
            f"role ARN {request.role_arn!r} is not an IAM role ARN "
            "(arn:aws:iam::<account>:role/<name>)"
        )
    if match.group(1) != request.account_id:
        raise Refused(
            f"role ARN {request.role_arn} is in account {match.group(1)}, not {request.account_id}"
        )
    if not request.regions:
        raise Refused("give at least one region")
    unknown = sorted(set(request.regions) - known_regions())
    if unknown:
        raise Refused(f"unknown region(s): {', '.join(unknown)}")
    if request.cloudtrail_bucket is not None and not BUCKET.match(request.cloudtrail_bucket):
        raise Refused(f"{request.cloudtrail_bucket!r} is not a valid S3 bucket name")
    if request.cloudtrail_prefix is not None and request.cloudtrail_bucket is None:
        raise Refused("--cloudtrail-prefix needs --cloudtrail-bucket")
    prefix = request.cloudtrail_prefix.strip("/") if request.cloudtrail_prefix else None
    return AccountRequest(
        request.account_id,
        request.role_arn,
        tuple(dict.fromkeys(request.regions)),
        request.cloudtrail_bucket,
        prefix or None,
    )


def new_external_id() -> str:
    """An ExternalId of 128 random bits, so none is ever reused across tenants."""
    return f"kopter-{secrets.token_hex(16)}"


def add_account(tenant: Tenant, request: AccountRequest) -> AwsAccount:
    """Connect an account to a tenant, with a newly generated ExternalId."""
    request = validate(request)
    account = AwsAccount(
        tenant.tenant_id,
        request.account_id,
        role_arn=request.role_arn,
        external_id=new_external_id(),
        regions=list(request.regions),
        cloudtrail_bucket=request.cloudtrail_bucket,
        cloudtrail_prefix=request.cloudtrail_prefix,
        created_at=_now(),
    )
    claim = GlobalItem(
        GlobalItem.owner_key(request.account_id),
        value={"tenant_id": tenant.tenant_id},
        updated_at=_now(),
    )
    for attempt in range(_REGISTER_ATTEMPTS):
        try:
            with TransactWrite(connection=connection()) as tx:
                tx.save(claim, condition=GlobalItem.key.does_not_exist())
                # A disconnected account's row may be taken over: its data is the tenant's.
                tx.save(
                    account,
                    condition=AwsAccount.account_id.does_not_exist()
                    | AwsAccount.removed_at.exists(),
                )
            return account
        except TransactWriteError as e:
            if dynamo.condition_failed(e):
                break
            # A conflict with another transaction on the same keys, or throttling: the claim
            # is undecided, so try again rather than tell the customer it is taken.
            if attempt == _REGISTER_ATTEMPTS - 1:
                raise KopterError(
                    f"account {request.account_id} could not be registered now "
                    f"({e.cause_response_code}): try again"
                ) from None
            time.sleep(0.2 * 2**attempt)
    owner = account_owner(request.account_id)
    if owner == tenant.tenant_id:
        raise Refused(f"account {request.account_id} is already connected to this tenant")
    raise Refused(f"account {request.account_id} is already registered by another tenant")


_REGISTER_ATTEMPTS = 4


def account_owner(account_id: str) -> str | None:
    """The tenant id that registered ``account_id``, read consistently."""
    try:
        item = GlobalItem.get(GlobalItem.owner_key(account_id), consistent_read=True)
    except DoesNotExist:
        return None
    return str(item.value["tenant_id"]) if item.value else None


def list_accounts(tenant_id: str, include_removed: bool = False) -> list[AwsAccount]:
    """The tenant's connected accounts (and, asked, those disconnected whose data is kept)."""
    return [a for a in AwsAccount.query(tenant_id) if include_removed or a.removed_at is None]


def all_accounts() -> Iterator[AwsAccount]:
    """Every connected account of every tenant, read now: one added a minute ago is included."""
    yield from (a for a in AwsAccount.scan() if a.removed_at is None)


def get_account(tenant_id: str, account_id: str) -> AwsAccount:
    try:
        return AwsAccount.get(tenant_id, account_id)
    except DoesNotExist:
        raise NotFound(
            f"account {account_id} is not connected to tenant {tenant_id} "
            "(see `kopter accounts list`)"
        ) from None


def no_longer_served(account: AwsAccount, region: str) -> str | None:
    """Why a job queued for ``region`` of ``account`` must not run any more, if it must not."""
    if account.removed_at is not None:
        return f"account {account.account_id} was disconnected"
    if region not in account.regions:
        return f"region {region} was removed from account {account.account_id}"
    return None


def onboarding_link(
    account: AwsAccount, settings: Settings, with_trail: bool = False
) -> str | None:
    """The console link that creates the account's stack (its current ExternalId among the
    parameters), or None until the operator has published the template
    (KOPTER_ONBOARDING_TEMPLATE_URL)."""
    if not settings.onboarding_template_url:
        return None
    defaults = customer.Defaults(
        tenant_id=account.tenant_id,
        external_id=account.external_id,
        cloudtrail_bucket=account.cloudtrail_bucket or "",
        cloudtrail_prefix=account.cloudtrail_prefix or "",
        with_trail=with_trail,
    )
    return customer.quick_create_link(settings.onboarding_template_url, settings.region, defaults)


def target(account: AwsAccount) -> Target:
    return Target(
        account.account_id, account.role_arn, account.external_id, account.previous_external_id
    )


def end_rotation(account: AwsAccount, sessions: CrossAccountSessions) -> bool:
    """Forget the account's old ExternalId once its role has accepted the new one here."""
    if not account.previous_external_id:
        return False
    if sessions.external_id_used(target(account)) != account.external_id:
        return False
    account.update(
        actions=[AwsAccount.previous_external_id.remove()],
        condition=AwsAccount.external_id == account.external_id,
    )
    return True


# --- health -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def check_account(
    account: AwsAccount, sessions: CrossAccountSessions, settings: Settings
) -> list[Check]:
    """Assume the account's role, then try each permission kopter's role grants there
    (``kopter.probes``); record the account's health.

    Nothing is tried when AssumeRole fails: nothing can work without it."""
    account_target = target(account)
    sessions.forget(account_target)  # a check must prove the role works now, not an hour ago
    try:
        sts = sessions.client(account_target, "sts", settings.region)
        identity = sts.get_caller_identity()
        if identity["Account"] != account.account_id:
            raise AssumeRoleFailed(
                f"the role answered as account {identity['Account']}, not {account.account_id}"
            )
    except AssumeRoleFailed as e:
        checks = [Check("assume-role", False, str(e))]
    except (ClientError, BotoCoreError) as e:
        checks = [Check("assume-role", False, aws_error(e))]
    else:
        outcomes = [
            outcome
            for region in account.regions
            for outcome in probes.ec2_probes(
                sessions.client(account_target, "ec2", region), region, account.tenant_id
            )
        ]
        if account.cloudtrail_bucket:
            s3 = sessions.client(account_target, "s3", settings.region)
            outcomes += probes.trail_probes(s3, account)
        checks = [Check("assume-role", True, identity["Arn"])]
        if account.previous_external_id:
            checks.append(_rotation_check(account, sessions))
        checks += [Check(o.name, o.ok, o.detail) for o in outcomes]
    record_health(account, checks)
    return checks


def _rotation_check(account: AwsAccount, sessions: CrossAccountSessions) -> Check:
    if end_rotation(account, sessions):
        return Check("external-id", True, "the new ExternalId works; the old one is forgotten")
    return Check(
        "external-id",
        True,
        "only the old ExternalId works: put the new one in the role's trust policy "
        "(`kopter accounts list --json` shows it), then check again",
    )


def record_health(account: AwsAccount, checks: Iterable[Check]) -> None:
    failed = [c for c in checks if not c.ok]
    now = _now()
    actions: list[Action] = [
        AwsAccount.healthy.set(not failed),
        AwsAccount.health_checked_at.set(now),
    ]
    if failed:
        actions += [
            AwsAccount.health_reason.set(f"{failed[0].name}: {failed[0].detail}"),
            AwsAccount.consecutive_failures.add(1),
            AwsAccount.unhealthy_since.set(AwsAccount.unhealthy_since | now),  # if not set
        ]
    else:
        actions += [
            AwsAccount.health_reason.remove(),
            AwsAccount.last_success_at.set(now),
            AwsAccount.consecutive_failures.set(0),
            AwsAccount.unhealthy_since.remove(),
        ]
    account.update(actions=actions)


def unhealthy_notice(account: AwsAccount) -> Notice:
    """The one notice of an account kopter cannot reach: identified by when it started to
    fail, so the hourly retries raise the same notice again, stored once."""
    since = account.unhealthy_since or _now()
    return Notice(
        tenant_id=account.tenant_id,
        kind="account-unhealthy",
        subject=f"account:{account.account_id}",
        occurred_at=times.stamp(since),
        severity="high",
        title=f"kopter cannot reach AWS account {account.account_id}",
        body=(
            f"{account.health_reason}. Check that the role {account.role_arn} exists and that "
            "its trust policy allows kopter with the account's ExternalId; kopter retries with "
            "a growing delay and resumes by itself once it works."
        ),
        links={"account": account.account_id},
    )


def due_for_describe(account: AwsAccount, now: datetime) -> bool:
    """A healthy account always; an unhealthy one after a backoff that doubles with each
    failure (1, 2, 4 … hours, at most a day), so a broken role is retried, not hammered."""
    if account.healthy or account.health_checked_at is None:
        return True
    hours = min(2 ** max(int(account.consecutive_failures) - 1, 0), 24)
    return now - account.health_checked_at >= timedelta(hours=hours) - timedelta(minutes=5)
