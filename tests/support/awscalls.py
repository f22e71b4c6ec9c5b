"""What IAM is asked when kopter sends a request: each request a RecordingProxy saw becomes the
authorizations AWS checks for it (action, resource ARN, context keys), with the principal that
signed it. A request of a kind this module does not know becomes an action no policy grants, so a
new call kopter starts making fails the tests until its permission (and its reading here) exist."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

from tests.support.iamsim import Authorization
from tests.support.proxy import Answered, Recorded

# Calls IAM does not authorize: anyone with credentials may ask who they are.
UNAUTHORIZED_CALLS = frozenset({"sts:GetCallerIdentity"})
NEW_SNAPSHOT = "snap-00000000000000000"
_CREDENTIAL = re.compile(r"Credential=([^/]+)/\d{8}/([\w-]+)/([\w-]+)/aws4_request")


@dataclass(frozen=True)
class Signer:
    access_key: str
    region: str
    service: str


def signer(request: Recorded) -> Signer | None:
    headers = {k.lower(): v for k, v in request.headers.items()}
    match = _CREDENTIAL.search(headers.get("authorization", ""))
    return Signer(*match.groups()) if match else None


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _texts(body: bytes, name: str) -> list[str]:
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return []
    return [e.text or "" for e in root.iter() if _local(e.tag) == name]


def assumed_roles(responses: Iterable[Answered]) -> dict[str, tuple[str, str]]:
    """Access key of each session AssumeRole handed out -> (account, session ARN)."""
    sessions = {}
    for answer in responses:
        if b"Action=AssumeRole" not in answer.request.body or answer.status != 200:
            continue
        [key] = _texts(answer.body, "AccessKeyId")
        [arn] = _texts(answer.body, "Arn")
        sessions[key] = (arn.split(":")[4], arn)
    return sessions


def snapshot_tags(responses: Iterable[Answered]) -> dict[str, dict[str, str]]:
    """Each snapshot's tags as DescribeSnapshots showed them: what a later DeleteSnapshot is
    authorized against (``aws:ResourceTag``)."""
    tags: dict[str, dict[str, str]] = {}
    for answer in responses:
        if b"Action=DescribeSnapshots" not in answer.request.body:
            continue
        root = ET.fromstring(answer.body)
        for item in root.iter():
            if _local(item.tag) != "item":
                continue
            ids = [c.text for c in item if _local(c.tag) == "snapshotId"]
            if not ids:
                continue
            found = tags.setdefault(str(ids[0]), {})
            for tag_set in (c for c in item if _local(c.tag) == "tagSet"):
                for tag in tag_set:
                    fields = {_local(f.tag): f.text or "" for f in tag}
                    found[fields["key"]] = fields["value"]
    return tags


def customer_authorizations(
    requests: Iterable[Recorded], responses: list[Answered]
) -> list[Authorization]:
    """What IAM authorizes for each request signed by a session of a customer's role."""
    sessions = assumed_roles(responses)
    tags = snapshot_tags(responses)
    found = []
    for request in requests:
        signed = signer(request)
        if signed is None or signed.access_key not in sessions:
            continue
        account, principal = sessions[signed.access_key]
        if signed.service == "ec2":
            found += _ec2(request, signed.region, account, principal, tags)
        elif signed.service == "s3":
            found += _s3(request, account, principal)
        else:
            action = _query_action(request, signed.service)
            if action not in UNAUTHORIZED_CALLS:
                found.append(Authorization(principal, action, "*", account, what="unparsed"))
    return found


def _query_action(request: Recorded, service: str) -> str:
    form = parse_qs(request.body.decode(errors="replace"))
    return f"{service}:{form.get('Action', ['(unknown)'])[0]}"


def _ec2(
    request: Recorded,
    region: str,
    account: str,
    principal: str,
    tags: dict[str, dict[str, str]],
) -> list[Authorization]:
    form = {k: v[0] for k, v in parse_qs(request.body.decode()).items()}
    action = form["Action"]
    snapshots = f"arn:aws:ec2:{region}::snapshot/"
    # AWS authorizes a snapshot being created as `snapshot/*`; the evaluator would take that as
    # a pattern, so it is named by an id no snapshot has.
    creating = f"{snapshots}{NEW_SNAPSHOT}"
    if action in ("DescribeInstances", "DescribeSnapshots"):
        return [Authorization(principal, f"ec2:{action}", "*", account, what=action)]
    if action == "CreateSnapshot":
        request_tags = {
            form[k]: form[k.replace(".Key", ".Value")]
            for k in form
            if re.fullmatch(r"TagSpecification\.1\.Tag\.\d+\.Key", k)
        }
        tag_context = {f"aws:RequestTag/{k}": v for k, v in request_tags.items()}
        tag_context["aws:TagKeys"] = sorted(request_tags)
        volume = f"arn:aws:ec2:{region}:{account}:volume/{form['VolumeId']}"
        what = f"CreateSnapshot of {form['VolumeId']}"
        return [
            Authorization(principal, "ec2:CreateSnapshot", volume, account, what=what),
            Authorization(principal, "ec2:CreateSnapshot", creating, account, tag_context, what),
            Authorization(
                principal,
                "ec2:CreateTags",
                creating,
                account,
                {**tag_context, "ec2:CreateAction": "CreateSnapshot"},
                what,
            ),
        ]
    if action == "DeleteSnapshot":
        snapshot = form["SnapshotId"]
        context = {f"aws:ResourceTag/{k}": v for k, v in tags.get(snapshot, {}).items()}
        return [
            Authorization(
                principal,
                "ec2:DeleteSnapshot",
                f"{snapshots}{snapshot}",
                account,
                context,
                f"DeleteSnapshot {snapshot}",
            )
        ]
    return [Authorization(principal, f"ec2:{action}", "*", account, what="unparsed")]


def _s3(request: Recorded, account: str, principal: str) -> list[Authorization]:
    parts = urlsplit(request.path)
    query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    bucket, _, key = parts.path.lstrip("/").partition("/")
    key = unquote(key)
    if request.method == "GET" and not key and query.get("list-type") == "2":
        context = {
            f"s3:{name}": query[name]
            for name in ("prefix", "delimiter", "max-keys")
            if name in query
        }
        return [
            Authorization(
                principal, "s3:ListBucket", f"arn:aws:s3:::{bucket}", account, context, "list"
            )
        ]
    if request.method in ("GET", "HEAD") and key and not query:
        return [
            Authorization(
                principal,
                "s3:GetObject",
                f"arn:aws:s3:::{bucket}/{key}",
                account,
                what=f"{request.method} object",
            )
        ]
    return [
        Authorization(principal, f"s3:{request.method}Unparsed", "*", account, what=request.path)
    ]


# --- kopter's own account ---------------------------------------------------------------------

_SQS_ACTIONS = {
    "DeleteMessageBatch": "DeleteMessage",
    "ChangeMessageVisibilityBatch": "ChangeMessageVisibility",
    "SendMessageBatch": "SendMessage",
}
_TRANSACT_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
    "Get": "GetItem",
}


def own_authorizations(
    requests: Iterable[Recorded], principal: str, account: str, region: str, access_key: str
) -> list[Authorization]:
    """What IAM authorizes for each request signed with kopter's own credentials
    (``access_key``), made as ``principal``."""
    found = []
    for request in requests:
        signed = signer(request)
        if signed is None or signed.access_key != access_key:
            continue
        parse = {"sqs": _sqs, "dynamodb": _dynamodb, "sts": _sts}.get(signed.service, _other)
        for action, resource, context in parse(request, signed.service, account, region):
            if action not in UNAUTHORIZED_CALLS:
                found.append(Authorization(principal, action, resource, account, context, action))
    return found


Parsed = list[tuple[str, str, dict]]


def _params(request: Recorded) -> tuple[str, dict]:
    """The operation and parameters of a JSON-protocol (X-Amz-Target) or query request."""
    headers = {k.lower(): v for k, v in request.headers.items()}
    target = headers.get("x-amz-target")
    if target:
        return target.rsplit(".", 1)[-1], json.loads(request.body or b"{}")
    form = parse_qs(request.body.decode(errors="replace")) or parse_qs(urlsplit(request.path).query)
    params = {k: v[0] for k, v in form.items()}
    return params.get("Action", "(unknown)"), params


def _sqs(request: Recorded, service: str, account: str, region: str) -> Parsed:
    operation, params = _params(request)
    action = f"sqs:{_SQS_ACTIONS.get(operation, operation)}"
    if operation == "ListQueues":
        return [(action, "*", {})]
    url = params.get("QueueUrl") or request.path.split("?")[0]
    name = params.get("QueueName") or url.rstrip("/").rsplit("/", 1)[-1]
    return [(action, f"arn:aws:sqs:{region}:{account}:{name}", {})]


def _dynamodb(request: Recorded, service: str, account: str, region: str) -> Parsed:
    operation, params = _params(request)
    table = f"arn:aws:dynamodb:{region}:{account}:table/"
    if operation == "ListTables":
        return [("dynamodb:ListTables", "*", {})]
    if operation in ("BatchGetItem", "BatchWriteItem"):
        return [(f"dynamodb:{operation}", table + name, {}) for name in params["RequestItems"]]
    if operation in ("TransactWriteItems", "TransactGetItems"):
        return [
            (f"dynamodb:{_TRANSACT_ACTIONS[kind]}", table + spec["TableName"], {})
            for item in params["TransactItems"]
            for kind, spec in item.items()
        ]
    resource = table + params["TableName"]
    if params.get("IndexName"):
        resource += f"/index/{params['IndexName']}"
    return [(f"dynamodb:{operation}", resource, {})]


def _sts(request: Recorded, service: str, account: str, region: str) -> Parsed:
    operation, params = _params(request)
    if operation == "AssumeRole":
        context = {"sts:ExternalId": params["ExternalId"]} if "ExternalId" in params else {}
        return [("sts:AssumeRole", params["RoleArn"], context)]
    return [(f"sts:{operation}", "*", {})]


def _other(request: Recorded, service: str, account: str, region: str) -> Parsed:
    operation, params = _params(request)
    service = {"monitoring": "cloudwatch"}.get(service, service)  # its signing name
    if service == "sns" and operation == "Publish":
        return [("sns:Publish", params.get("TopicArn", "*"), {})]
    if service in ("ses", "email") and operation == "SendEmail":
        # SES authorizes a send on the identity it sends as: the address or its domain, whichever
        # was verified. Both must be allowed.
        sender = params.get("Source", "")
        identity = f"arn:aws:ses:{region}:{account}:identity/"
        context = {"ses:FromAddress": sender}
        return [
            ("ses:SendEmail", identity + sender, context),
            ("ses:SendEmail", identity + sender.rsplit("@", 1)[-1], context),
        ]
    return [(f"{service}:{operation}", "*", {})]
