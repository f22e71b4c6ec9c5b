"""The isolation checker (tests/test_isolation.py): every partition a DynamoDB request reads or
writes, named by its hash-key value, judged against one tenant's own; and a scan of logs for
secrets. What the parser cannot read is never taken as the tenant's."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, quote_plus

from kopter.tables import ALL_MODELS
from tests.conftest import TEST_ENV
from tests.support.proxy import Recorded, RecordingProxy

PREFIX = TEST_ENV["KOPTER_PREFIX"]

DYNAMODB_TARGET = "DynamoDB_20120810."
# Operations that name no item: a table's description.
METADATA_OPERATIONS = frozenset({"DescribeTable", "DescribeTimeToLive", "ListTables"})
SCANNED = "(every partition)"  # the attribute of a Scan's use: it reads every tenant's items
NOT_UNDERSTOOD = "(not understood)"  # what the parser cannot read is never taken as A's
SHARED_TABLES = frozenset({"Ec2Prices"})  # keyed by region: the price list, no tenant's data
SHARED_GLOBAL_KINDS = frozenset({"pricing"})  # the price list's versions and ETags


def _partition_keys() -> dict[str, frozenset[str]]:
    """Per table (kopter's name, without a prefix): its hash key and its indexes' hash keys,
    the attributes whose value says whose partition an item lives in."""
    found = {}
    for model in ALL_MODELS:
        schema = model._get_schema()
        schemas: list[Any] = [schema, *schema["global_secondary_indexes"]]
        found[model.Meta.table_name.removeprefix(PREFIX)] = frozenset(
            key["AttributeName"]
            for s in schemas
            for key in s["key_schema"]
            if key["KeyType"] == "HASH"
        )
    return found


PARTITION_KEYS = _partition_keys()


@dataclass(frozen=True)
class KeyUse:
    """One partition one DynamoDB request reads or writes, named by a hash-key value."""

    operation: str
    table: str  # kopter's name, without the prefix
    attribute: str  # SCANNED for a Scan, NOT_UNDERSTOOD for what the parser cannot read
    value: str

    def __str__(self) -> str:
        return f"{self.operation} {self.table}.{self.attribute} = {self.value!r}"


def operation(request: Recorded) -> str:
    headers = {name.lower(): value for name, value in request.headers.items()}
    return headers.get("x-amz-target", "")


def dynamodb_requests(requests: Iterable[Recorded]) -> list[Recorded]:
    return [r for r in requests if operation(r).startswith(DYNAMODB_TARGET)]


def key_uses(request: Recorded, prefix: str) -> list[KeyUse]:
    """Every partition-key value a DynamoDB request names, wherever it names one."""
    op = operation(request).removeprefix(DYNAMODB_TARGET)
    body = json.loads(request.body)
    if op in METADATA_OPERATIONS:
        return []
    if op in ("GetItem", "DeleteItem", "UpdateItem", "PutItem", "Query", "Scan"):
        return _uses_of(op, body["TableName"], body, prefix)
    if op == "BatchGetItem":
        return [
            use
            for table, spec in body["RequestItems"].items()
            for key in spec["Keys"]
            for use in _uses_of(op, table, {"Key": key}, prefix)
        ]
    if op == "BatchWriteItem":
        return [
            use
            for table, writes in body["RequestItems"].items()
            for write in writes
            for spec in write.values()  # {"PutRequest": {"Item"}} or {"DeleteRequest": {"Key"}}
            for use in _uses_of(op, table, spec, prefix)
        ]
    if op in ("TransactWriteItems", "TransactGetItems"):
        return [
            use
            for entry in body["TransactItems"]
            for spec in entry.values()  # Put, Update, Delete, ConditionCheck, Get
            for use in _uses_of(op, spec["TableName"], spec, prefix)
        ]
    return [KeyUse(op, body.get("TableName", "?"), NOT_UNDERSTOOD, "an unknown operation")]


# DynamoDB's legacy parameters, which kopter (PynamoDB) does not send: not parsed, so never A's.
LEGACY_PARAMETERS = ("KeyConditions", "QueryFilter", "ScanFilter", "Expected", "AttributeUpdates")


def _uses_of(op: str, table_name: str, spec: dict[str, Any], prefix: str) -> list[KeyUse]:
    """The partition keys named by one table's part of a request: ``Key``, ``Item``,
    ``ExclusiveStartKey``, and the expressions (key condition, update, condition, filter).
    A part that names no partition at all (but a Scan's) is not understood."""
    table = table_name.removeprefix(prefix)
    partition = PARTITION_KEYS.get(table) if table_name.startswith(prefix) else None
    if partition is None:
        return [KeyUse(op, table_name, NOT_UNDERSTOOD, "a table of no known kopter world")]
    uses = [KeyUse(op, table, SCANNED, "*")] if op == "Scan" else []
    uses += [KeyUse(op, table, NOT_UNDERSTOOD, p) for p in LEGACY_PARAMETERS if p in spec]
    for part in ("Key", "Item", "ExclusiveStartKey"):
        for attribute, value in (spec.get(part) or {}).items():
            if attribute in partition:
                uses.append(KeyUse(op, table, attribute, _plain(value)))
    names = spec.get("ExpressionAttributeNames") or {}
    values = spec.get("ExpressionAttributeValues") or {}
    for part in (
        "KeyConditionExpression",
        "UpdateExpression",
        "ConditionExpression",
        "FilterExpression",
    ):
        uses += _expression_uses(op, table, partition, spec.get(part) or "", names, values)
    return uses or [KeyUse(op, table, NOT_UNDERSTOOD, "no partition named")]


# `name = :value` either way round (a name is `#placeholder` or plain); `attribute_exists(name)`
# and `attribute_not_exists(name)` name no value.
_EQUALS = re.compile(r"([#\w]+)\s*=\s*(:\w+)|(:\w+)\s*=\s*([#\w]+)")
_EXISTS = re.compile(r"attribute_(?:not_)?exists\s*\(\s*[#\w]+\s*\)")
_NAME = re.compile(r"[#\w]+")


def _expression_uses(
    op: str,
    table: str,
    partition: frozenset[str],
    expression: str,
    names: dict[str, str],
    values: dict[str, Any],
) -> list[KeyUse]:
    uses = []
    for match in _EQUALS.finditer(expression):
        name, value = (match.group(1), match.group(2)) if match.group(1) else match.group(4, 3)
        attribute = names.get(name, name)
        if attribute in partition:
            uses.append(KeyUse(op, table, attribute, _plain(values[value])))
    rest = _EXISTS.sub("", _EQUALS.sub("", expression))
    for name in _NAME.findall(rest):
        attribute = names.get(name, name)
        if attribute in partition:  # compared some other way: never taken as A's
            uses.append(KeyUse(op, table, attribute, NOT_UNDERSTOOD))
    return uses


def _plain(value: dict[str, Any]) -> str:
    return value["S"] if set(value) == {"S"} else json.dumps(value, sort_keys=True)


@dataclass(frozen=True)
class Owner:
    """Whose keys a flow may touch: a tenant's partitions, and its Global items (a Global key of
    a kind not named here is nobody's to touch)."""

    tenant_id: str
    account_ids: frozenset[str]

    def owns(self, use: KeyUse) -> bool:
        if use.table in SHARED_TABLES:
            return True
        if use.attribute in (SCANNED, NOT_UNDERSTOOD):
            return False
        if use.table == "Global":
            kind, _, rest = use.value.partition("#")
            if kind == "account-owner":  # the claim on an account id
                return rest in self.account_ids
            if kind == "described":  # described#<tenant>#<account>#<region>
                return rest.startswith(f"{self.tenant_id}#")
            return kind in SHARED_GLOBAL_KINDS
        if use.table == "Tenants":
            return use.value == self.tenant_id
        # Tenant ids never hold "#": "<A>#…" is A's partition, whoever's account follows.
        return use.value == self.tenant_id or use.value.startswith(f"{self.tenant_id}#")


@dataclass
class Verdict:
    """What a set of requests touched beyond one tenant's own."""

    requests: int  # DynamoDB requests looked at
    foreign: list[str] = field(default_factory=list)
    tables_written: set[str] = field(default_factory=set)


WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"})


def check(
    requests: Iterable[Recorded],
    owner: Owner,
    others: Iterable[str],
    accepted_scans: frozenset[str] = frozenset(),
) -> Verdict:
    """Every partition the DynamoDB requests touch must be ``owner``'s, and no request may name
    another tenant (``others``: their ids) anywhere, in a filter or a value written. A Scan is
    foreign unless its table is in ``accepted_scans`` (the caller says why)."""
    seen = dynamodb_requests(requests)
    verdict = Verdict(len(seen))
    other_ids = [o for o in others if o != owner.tenant_id]
    for request in seen:
        for use in key_uses(request, PREFIX):
            if use.operation in WRITES and use.attribute != NOT_UNDERSTOOD:
                verdict.tables_written.add(use.table)
            if use.attribute == SCANNED and use.table in accepted_scans:
                continue
            if not owner.owns(use):
                verdict.foreign.append(str(use))
        text = request.body.decode()
        verdict.foreign += [
            f"{operation(request)} names tenant {other}" for other in other_ids if other in text
        ]
    return verdict


def assumed_roles(requests: Iterable[Recorded]) -> set[tuple[str, str]]:
    """(role ARN, ExternalId) of every AssumeRole call among ``requests``."""
    found = set()
    for request in requests:
        form = parse_qs(request.body.decode(errors="replace"))
        if form.get("Action") == ["AssumeRole"]:
            found.add((form["RoleArn"][0], form.get("ExternalId", [""])[0]))
    return found


CREDENTIAL = re.compile(r"<(SecretAccessKey|SessionToken)>([^<]+)</\1>")


@dataclass(frozen=True)
class Log:
    source: str
    text: str
    # The output of `accounts add` and `accounts list --json` is the ExternalId, for the
    # operator to give the customer: only there may one show.
    shows_external_ids: bool = False


def handed_out(proxies: Iterable[RecordingProxy]) -> dict[str, str]:
    """Every secret key and session token AssumeRole answered through ``proxies``: value ->
    what it is."""
    found = {}
    for proxy in proxies:
        for answer in proxy.responses:
            if b"Action=AssumeRole" in answer.request.body:
                for kind, value in CREDENTIAL.findall(answer.body.decode()):
                    found[value] = f"a {kind} AssumeRole handed out"
    return found


def leaks(logs: Iterable[Log], secrets_by_value: dict[str, str]) -> list[str]:
    """Where each secret shows in the logs, as is or URL-encoded."""
    return [
        f"{what} in {log.source}"
        for log in logs
        for value, what in secrets_by_value.items()
        if value in log.text or quote_plus(value) in log.text
    ]
