"""The one way kopter reaches a customer's AWS account.

kopter calls ``sts:AssumeRole`` on the role the customer registered, always with that account's
ExternalId: without it, any other customer who learned the role ARN could have kopter act on an
account that is not theirs (the confused deputy). This module is the only caller of AssumeRole;
it refuses to call it without an ExternalId.

Credentials are botocore ``RefreshableCredentials``: cached per account for the process, shared by
every thread, and refreshed (under botocore's own lock) minutes before they expire. Every
account's session shares one botocore loader, so a service's model is read once per process and
not once per account (28 MiB and half a second of CPU each, measured).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import boto3
import botocore.session
from botocore.credentials import RefreshableCredentials
from botocore.exceptions import BotoCoreError, ClientError

from kopter import aws
from kopter.errors import KopterError, aws_error
from kopter.settings import Settings

ROLE_SESSION_SECONDS = 3600


class AssumeRoleFailed(KopterError):
    """The customer's role could not be assumed: deleted, wrong ExternalId, access denied."""


@dataclass(frozen=True)
class Target:
    """Where and how to reach one customer account."""

    account_id: str
    role_arn: str
    external_id: str
    # While a rotation is pending: the old ExternalId, tried when the new one is refused.
    previous_external_id: str | None = None


def assume_role(target: Target, settings: Settings) -> dict[str, Any]:
    """Call AssumeRole with the account's ExternalId (or, refused and a rotation pending, the
    previous one); return botocore credential metadata and the ``external_id`` that worked."""
    if not target.external_id:
        raise AssumeRoleFailed(f"account {target.account_id} has no ExternalId: refusing")
    sts = aws.client("sts", settings)
    external_ids = [target.external_id, *filter(None, [target.previous_external_id])]
    for external_id in external_ids:
        try:
            response = sts.assume_role(
                RoleArn=target.role_arn,
                RoleSessionName=settings.role_session_name,
                ExternalId=external_id,
                DurationSeconds=ROLE_SESSION_SECONDS,
            )
            break
        except (ClientError, BotoCoreError) as e:
            denied = (
                isinstance(e, ClientError) and e.response["Error"].get("Code") == "AccessDenied"
            )
            if denied and external_id != external_ids[-1]:
                continue
            raise AssumeRoleFailed(f"cannot assume {target.role_arn}: {aws_error(e)}") from None
    credentials = response["Credentials"]
    expiration: datetime = credentials["Expiration"]
    return {
        "access_key": credentials["AccessKeyId"],
        "secret_key": credentials["SecretAccessKey"],
        "token": credentials["SessionToken"],
        "expiry_time": expiration.isoformat(),
        "external_id": external_id,
    }


class CrossAccountSessions:
    """Sessions and clients in customer accounts, cached per account and shared by threads.

    Two bounds, least recently used first out: credentials are small and cost an AssumeRole to
    get again, so many accounts keep them; sessions with their clients weigh about 3 MiB an
    account, so fewer keep those, and a session evicted is rebuilt from the kept credentials
    without calling AssumeRole."""

    def __init__(
        self,
        settings: Settings,
        max_credentials: int = 8192,
        max_sessions: int = 128,
    ) -> None:
        self._settings = settings
        self._max_credentials, self._max_sessions = max_credentials, max_sessions
        self._loader = botocore.session.get_session().get_component("data_loader")
        self._lock = threading.Lock()
        self._credentials: OrderedDict[Target, RefreshableCredentials] = OrderedDict()
        self._sessions: OrderedDict[Target, boto3.session.Session] = OrderedDict()
        self._clients: dict[tuple[Target, str, str], Any] = {}
        self._assuming: dict[Target, threading.Lock] = {}
        self._external_ids: dict[Target, str] = {}

    def session(self, target: Target) -> boto3.session.Session:
        with self._lock:
            session = self._sessions.get(target)
            if session is not None:
                self._sessions.move_to_end(target)
                return session
            credentials = self._credentials.get(target)
            if credentials is not None:
                self._credentials.move_to_end(target)
        if credentials is None:
            credentials = self._assume(target)
        with self._lock:
            session = self._sessions.get(target)
            if session is None:
                session = self._sessions[target] = self._new_session(credentials)
                while len(self._sessions) > self._max_sessions:
                    evicted, _ = self._sessions.popitem(last=False)
                    self._drop_clients(evicted)
            return session

    def _assume(self, target: Target) -> RefreshableCredentials:
        with self._lock:
            assuming = self._assuming.setdefault(target, threading.Lock())
        # One AssumeRole per account however many threads ask at once, and none under the
        # shared lock: one slow account must not hold up the others.
        with assuming:
            with self._lock:
                credentials = self._credentials.get(target)
            if credentials is not None:
                return credentials

            def assume() -> dict[str, Any]:
                metadata = assume_role(target, self._settings)
                self._external_ids[target] = metadata["external_id"]
                return metadata

            try:
                credentials = RefreshableCredentials.create_from_metadata(
                    metadata=assume(), refresh_using=assume, method="sts-assume-role"
                )
            except BaseException:
                with self._lock:
                    self._assuming.pop(target, None)
                raise
            with self._lock:
                self._assuming.pop(target, None)
                self._credentials[target] = credentials
                while len(self._credentials) > self._max_credentials:
                    self._credentials.popitem(last=False)
            return credentials

    def _new_session(self, credentials: RefreshableCredentials) -> boto3.session.Session:
        core = botocore.session.get_session()
        core.register_component("data_loader", self._loader)
        core._credentials = credentials  # botocore has no public setter for a refreshable pair
        return boto3.session.Session(botocore_session=core)

    def _drop_clients(self, target: Target) -> None:
        self._clients = {k: v for k, v in self._clients.items() if k[0] != target}

    def client(self, target: Target, service: str, region: str) -> Any:
        key = (target, service, region)
        with self._lock:
            cached = self._clients.get(key)
        if cached is not None:
            return cached
        session = self.session(target)
        with self._lock:  # a boto3 Session may not create clients from two threads at once
            if key not in self._clients:
                self._clients[key] = session.client(
                    service,
                    region_name=region,
                    endpoint_url=self._settings.aws_endpoint_url,
                    config=aws.RETRY_CONFIG,
                )
            return self._clients[key]

    def external_id_used(self, target: Target) -> str | None:
        """The ExternalId the account's role last accepted in this process."""
        return self._external_ids.get(target)

    def forget(self, target: Target) -> None:
        """Drop an account's cached credentials, e.g. after its role was denied."""
        with self._lock:
            self._credentials.pop(target, None)
            self._external_ids.pop(target, None)
            self._sessions.pop(target, None)
            self._drop_clients(target)


_shared: dict[Settings, CrossAccountSessions] = {}
_shared_lock = threading.Lock()


def shared_sessions(settings: Settings) -> CrossAccountSessions:
    """This process's sessions for ``settings``' deployment; a forked child starts with none of
    its parent's."""
    with _shared_lock:
        if settings not in _shared:
            _shared[settings] = CrossAccountSessions(settings)
        return _shared[settings]


def _forget_after_fork() -> None:
    global _shared_lock
    _shared_lock = threading.Lock()
    _shared.clear()


os.register_at_fork(after_in_child=_forget_after_fork)
