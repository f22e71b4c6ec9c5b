"""kopter reaches customer accounts only through AssumeRole with the account's ExternalId."""

from __future__ import annotations

import re
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs

import pytest

from kopter import aws
from kopter.crossaccount import AssumeRoleFailed, CrossAccountSessions, Target, assume_role
from kopter.settings import get_settings
from tests.conftest import MOTO_PORT, ROOT
from tests.support.proxy import RecordingProxy


def _account() -> str:
    return "4" + "".join(secrets.choice("0123456789") for _ in range(11))


def test_every_assume_role_kopter_sends_carries_the_accounts_external_id(kopter):
    c = kopter.connect("--regions", "us-east-1,us-west-2")
    account, external_id = c.account, c.external_id
    with RecordingProxy(MOTO_PORT) as proxy:
        kopter(
            "accounts",
            "check",
            "--tenant",
            c.tenant,
            "--account-id",
            account,
            env={"KOPTER_AWS_ENDPOINT_URL": proxy.url},
        )
    sts_calls = [
        parse_qs(r.body.decode()) for r in proxy.requests if b"Action=AssumeRole" in r.body
    ]
    assert len(sts_calls) == 1  # cached: one AssumeRole for every client in the account
    assert sts_calls[0]["ExternalId"] == [external_id]
    assert sts_calls[0]["RoleArn"] == [f"arn:aws:iam::{account}:role/kopter"]
    # And the account's own calls were signed with the assumed role's keys, not kopter's.
    ec2_calls = [r for r in proxy.requests if b"Action=DescribeInstances" in r.body]
    assert len(ec2_calls) == 2
    assert all("Credential=testing/" not in r.headers["Authorization"] for r in ec2_calls)


def test_assume_role_without_external_id_is_refused_before_any_call():
    target = Target("123456789012", "arn:aws:iam::123456789012:role/r", "")
    with pytest.raises(AssumeRoleFailed, match="no ExternalId"):
        assume_role(target, get_settings())


def test_only_crossaccount_calls_assume_role():
    callers = [
        path.relative_to(ROOT).as_posix()
        for folder in ("kopter", "tasks")
        for path in (ROOT / folder).rglob("*.py")
        if re.search(r"\.assume_role\(", path.read_text())
    ]
    assert callers == ["kopter/crossaccount.py"]


@contextmanager
def assume_role_calls() -> Iterator[list[dict]]:
    """The parameters of every AssumeRole this process's STS client sends, as they are sent."""
    calls: list[dict] = []
    sts = aws.client("sts", get_settings())

    def record(params: dict, **_: object) -> None:
        calls.append(dict(params))

    sts.meta.events.register("provide-client-params.sts.AssumeRole", record)
    try:
        yield calls
    finally:
        sts.meta.events.unregister("provide-client-params.sts.AssumeRole", record)


def _target() -> Target:
    account = _account()
    return Target(account, f"arn:aws:iam::{account}:role/r", f"kopter-test-{account}")


def test_threads_share_one_assume_role_per_account():
    sessions = CrossAccountSessions(get_settings())
    target = _target()
    barrier = threading.Barrier(8)
    identities: list[str] = []

    def work(region: str) -> None:
        barrier.wait()
        client = sessions.client(target, "sts", region)
        identities.append(client.get_caller_identity()["Account"])

    with assume_role_calls() as calls:
        threads = [threading.Thread(target=work, args=(r,)) for r in ["us-east-1", "eu-west-1"] * 4]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert [c["ExternalId"] for c in calls] == [target.external_id]
    assert identities == [target.account_id] * 8


def test_credentials_are_refreshed_before_they_expire():
    sessions = CrossAccountSessions(get_settings())
    with assume_role_calls() as calls:
        credentials = sessions.session(_target()).get_credentials()
        first = credentials.get_frozen_credentials().access_key
        assert len(calls) == 1
        # Five minutes from expiry is inside botocore's mandatory refresh window (10 minutes).
        credentials._expiry_time = datetime.now(UTC) + timedelta(minutes=5)
        assert credentials.get_frozen_credentials().access_key != first
        assert len(calls) == 2


def test_an_evicted_session_is_rebuilt_from_kept_credentials():
    sessions = CrossAccountSessions(get_settings(), max_sessions=1)
    first, second = _target(), _target()
    with assume_role_calls() as calls:
        for target in (first, second, first, second):
            account = sessions.client(target, "sts", "us-east-1").get_caller_identity()["Account"]
            assert account == target.account_id
    assert [c["ExternalId"] for c in calls] == [first.external_id, second.external_id]
