"""Two deployments in one process: kopter's tables are the ones ``bind`` names, whatever the
environment says, and none before ``bind``."""

import dataclasses
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator

import pytest

from kopter import accounts, aws
from kopter.bootstrap import bootstrap
from kopter.tables import TablesNotBound, Tenant, bind
from tests.conftest import ROOT, SETTINGS


@pytest.fixture
def rebound() -> Iterator[None]:
    yield
    bind(SETTINGS)  # the other tests' deployment


def _tenant_ids() -> set[str]:
    return {t.tenant_id for t in accounts.list_tenants()}


def test_each_deployment_sees_its_own_tables_with_no_environment_change(rebound):
    environment = dict(os.environ)
    a = SETTINGS
    b = dataclasses.replace(SETTINGS, prefix=f"kt{secrets.token_hex(3)}b-")

    bind(a)
    in_a = accounts.add_tenant(f"only-in-a-{secrets.token_hex(4)}").tenant_id
    bind(b)
    bootstrap(b)
    in_b = accounts.add_tenant(f"only-in-b-{secrets.token_hex(4)}").tenant_id
    assert Tenant.Meta.table_name == f"{b.prefix}Tenants"
    assert _tenant_ids() == {in_b}  # B's tables are new: A's tenants are not there
    bind(a)
    assert in_a in _tenant_ids() and in_b not in _tenant_ids()

    # On the wire as well: each table holds its own deployment's tenant.
    dynamodb = aws.client("dynamodb", a)
    scanned = {
        s.prefix: {
            i["tenant_id"]["S"] for i in dynamodb.scan(TableName=f"{s.prefix}Tenants")["Items"]
        }
        for s in (a, b)
    }
    assert scanned[b.prefix] == {in_b}
    assert in_a in scanned[a.prefix] and in_b not in scanned[a.prefix]
    assert dict(os.environ) == environment


def test_bootstrap_refuses_settings_other_than_the_bound_ones():
    other = dataclasses.replace(SETTINGS, prefix=f"kt{secrets.token_hex(3)}x-")
    with pytest.raises(TablesNotBound, match=other.prefix):
        bootstrap(other)


def test_a_model_used_before_bind_fails_naming_bind():
    used = subprocess.run(
        [sys.executable, "-c", "from kopter.tables import Tenant; Tenant.get('t')"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert used.returncode != 0
    assert "TablesNotBound: table 'Tenants' used before kopter.tables.bind" in used.stderr
