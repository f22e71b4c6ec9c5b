"""No input crashes a worker: property-based runs over kopter's three parsers of outside input.

Whatever the bytes, each parser either takes its input or refuses it with its documented
exception and a one-line reason; no other exception leaves it.

- Notifications (``cloudtrail.notifications.parse``, through the bridge that drains the raw
  queue): a message is parked in the DLQ with its reason (``Unparseable``) or handed on as
  (bucket, key) strings an ingest task can carry, and deleted either way, once. Valid S3 and
  CloudTrail notifications give back their bucket and keys, URL-decoded where S3 encodes them.
- CloudTrail log files and exports (``ingest.decompress``, ``records.decode``, ``records.items``
  and the EC2 changes ingest reads from each record), in every shape ``kopter ingest`` reads:
  refused whole (``Refused``) or decoded; then every record is an item or a counted rejection
  and is judged by every detection rule (kopter's and SigmaHQ's) without an error,
  a record of the right shape is never lost beside a bad one (not even beside one no parser
  takes: a lone-surrogate escape, nesting past the recursion limit), and every item fits
  DynamoDB's 400 KB with keys within DynamoDB's limits. Every gzip member is read; gzip is
  refused when corrupt, and a gzip bomb is refused without being inflated.
- Offer files (``pricing.catalog.build_catalog`` over ``offerfile.read_offer``): refused
  (``OfferFileError``, saying where) or read into a catalog, the same in any chunking; every
  price kept is a plain, finite, non-negative decimal that DynamoDB takes.
"""

from __future__ import annotations

import copy
import gzip
import itertools
import json
import re
import string
import tracemalloc
import uuid
import zlib
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any
from unittest import mock
from urllib.parse import quote_plus

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kopter import dlq
from kopter.cloudtrail import bridge, jsonsplit, records
from kopter.cloudtrail.ingest import GZIP_MAGIC, decompress, unique_items
from kopter.cloudtrail.notifications import Unparseable, parse
from kopter.cloudtrail.objects import log_object
from kopter.detections import findings, tenant_rules
from kopter.detections.rules import RuleSet
from kopter.ec2 import events as ec2_events
from kopter.errors import Refused
from kopter.pricing import offerfile
from kopter.pricing.catalog import Catalog, build_catalog
from kopter.pricing.offerfile import OfferFileError
from kopter.pricing.store import to_item
from kopter.settings import get_settings
from tests.support.factories import templates
from tests.support.offers import RESERVED_TERMS, P, offer

pytestmark = pytest.mark.unit

# Example counts that keep the module's properties to about 10 s of one core: each finds the
# faults it was written for (against the code before they were fixed) well within them.
# deadline=None: a loaded shared machine must not turn a slow example into a failure.
QUICK = settings(max_examples=100, deadline=None, database=None)
# The large documents (huge strings, offer files) take a few ms each to build, which Hypothesis
# flags as too_slow; that is their point, not a strategy gone wrong.
LARGE = settings(
    max_examples=75, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)

# What SQS carries in a message attribute: XML's characters (no lone surrogates, few controls).
SQS_TEXT = re.compile("[\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]*")


def assert_clear(message: str) -> None:
    """A reason an operator reads in one log line, and SQS can carry as the DLQ's reason."""
    assert message, "a refusal without a reason"
    assert "\n" not in message and "\r" not in message, message
    assert len(message) <= 1000, message[:200]
    assert SQS_TEXT.fullmatch(message), ascii(message)


# --- JSON, damaged -------------------------------------------------------------------------

# Replaced, after json.dumps (which cannot nest that deep itself), by nesting within the
# interpreter's recursion limit or past it (not close to it: whether a parse reaches it there
# depends on how deep the stack already is).
DEEP = "\x00deep\x00"
DEPTHS = st.sampled_from([30, 500, 5_000])
DROP = object()  # a mutation's result: the key or element is removed

SAFE_CHARACTERS = st.characters(exclude_categories=["Cs"])
SAFE_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(SAFE_CHARACTERS, max_size=20)
)
# Beyond strict JSON, as json.dumps writes it: NaN, Infinity, lone surrogates ("\ud800").
HOSTILE_SCALARS = SAFE_SCALARS | st.floats() | st.text(st.characters(), max_size=20)


def json_values(scalars: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.recursive(
        scalars,
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(st.text(SAFE_CHARACTERS, max_size=10), children, max_size=4)
        ),
        max_leaves=16,
    )


def mutations(hostile: bool, huge: int) -> st.SearchStrategy[Callable[[Any], Any]]:
    """What can become of a value: dropped, retyped, wrapped, encoded once more, up to ``huge``
    characters long; and when ``hostile``, beyond strict JSON too (NaN, lone surrogates,
    nesting past any parser's recursion)."""
    scalars = HOSTILE_SCALARS if hostile else SAFE_SCALARS
    characters = st.characters() if hostile else SAFE_CHARACTERS
    huge_strings = st.builds(lambda c, n: c * n, characters, st.sampled_from([1_000, huge]))
    choices = [
        st.just(lambda old: DROP),
        scalars.map(lambda new: lambda old: new),
        st.just(lambda old: [old]),  # a list where a value was expected
        st.just(lambda old: {"value": old}),
        st.just(lambda old: json.dumps(old)),  # a string where JSON was
        st.just(lambda old: []),
        st.just(lambda old: {}),
        huge_strings.map(lambda new: lambda old: new),
    ]
    if hostile:
        choices.append(st.just(lambda old: DEEP))
    return st.one_of(choices)


def _paths(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield path
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths(child, (*path, key))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            yield from _paths(child, (*path, i))


def _mutate(value: Any, path: tuple[Any, ...], mutation: Callable[[Any], Any]) -> Any:
    """``value`` with the part at ``path`` mutated; the original is left as it was."""
    if not path:
        return mutation(value)
    head, rest = path[0], path[1:]
    changed = dict(value) if isinstance(value, dict) else list(value)
    new = _mutate(changed[head], rest, mutation)
    if new is DROP:
        del changed[head]
    else:
        changed[head] = new
    return changed


@st.composite
def damaged(
    draw: st.DrawFn, document: Any, hostile: bool, huge: int = 100_000, most: int = 3
) -> Any:
    """``document`` with up to ``most`` of its parts mutated (None if it was dropped whole)."""
    for _ in range(draw(st.integers(0, most))):
        path = draw(st.sampled_from(list(_paths(document))))
        document = _mutate(document, path, draw(mutations(hostile, huge)))
        if document is DROP:
            return None
    return document


@st.composite
def dumped(draw: st.DrawFn, document: Any) -> str:
    """JSON text of ``document``, escaped to ASCII or not, with any DEEP made deep."""
    text = json.dumps(document, ensure_ascii=draw(st.booleans()))
    deep = json.dumps(DEEP)
    while deep in text:
        depth = draw(DEPTHS)
        text = text.replace(deep, "[" * depth + "]" * depth, 1)
    return text


@st.composite
def damaged_bytes(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` as it was (half the time), cut short, or with bytes replaced or slipped in (not
    UTF-8, say)."""
    if not data or draw(st.booleans()):
        return data
    damage = draw(st.sampled_from(["truncated", "replaced", "inserted"]))
    at = draw(st.integers(0, len(data) - 1))
    if damage == "truncated":
        return data[:at]
    garbage = draw(st.binary(min_size=1, max_size=4))
    if damage == "replaced":
        return data[:at] + garbage + data[at + len(garbage) :]
    return data[:at] + garbage + data[at:]


# --- 1. Notifications, through the bridge ------------------------------------------------

BUCKETS = st.text(string.ascii_lowercase + string.digits + ".-", min_size=3, max_size=63)
# What S3 keys can be: any Unicode (up to 1,024 bytes; the parser does not care).
OBJECT_KEYS = st.text(SAFE_CHARACTERS, min_size=1, max_size=60)
LOG_KEYS = st.builds(
    lambda prefix, account, region, suffix: (
        f"{prefix}AWSLogs/{account}/CloudTrail/{region}/2026/03/01/"
        f"{account}_CloudTrail_{region}_20260301T0015Z_{suffix}.json.gz"
    ),
    st.sampled_from(["", "my trail/", "a+b%2B%/", "ünïcödé 😀/"]) | OBJECT_KEYS.map("{}/".format),
    st.integers(0, 10**12 - 1).map("{:012}".format),
    st.sampled_from(["us-east-1", "eu-west-3"]),
    st.text(string.ascii_letters + string.digits, min_size=16, max_size=16),
)
KEYS = LOG_KEYS | OBJECT_KEYS
# Keys as they may arrive: unencoded, badly encoded ("%" sequences S3 would never write), or
# with a lone surrogate, which JSON can escape and no S3 key holds.
RAW_KEYS = (
    KEYS
    | st.sampled_from(["%", "%zz", "%E2%82", "%ED%A0%80", "+%2B+", "\ud800%41"])
    | LOG_KEYS.map("\udc80/{}".format)
)
EVENT_NAMES = st.sampled_from(
    ["ObjectCreated:Put", "ObjectCreated:CompleteMultipartUpload", "ObjectRemoved:Delete"]
)


def s3_event(bucket: str, created: list[tuple[str, str]]) -> dict[str, Any]:
    """S3's notification of (eventName, key)s, the keys written as given."""
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": "us-east-1",
                "eventTime": "2026-03-01T00:15:03.123Z",
                "eventName": name,
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
                    "object": {"key": key, "size": 1234},
                },
            }
            for name, key in created
        ]
    }


def sns(message: str, kind: str = "Notification") -> dict[str, Any]:
    return {
        "Type": kind,
        "MessageId": "6d3bd8b9-0d2b-5b1f-9b0a-6f0a4a7a2f0e",
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:trail-topic",
        "Message": message,
        "Timestamp": "2026-03-01T00:15:04.000Z",
        "SignatureVersion": "1",
    }


@st.composite
def notification_bodies(draw: st.DrawFn) -> str:
    """Near-valid: each shape AWS sends, damaged, inside zero to two SNS envelopes themselves
    damaged."""
    bucket, keys = draw(BUCKETS), draw(st.lists(RAW_KEYS, min_size=1, max_size=3))
    document: Any = draw(
        st.sampled_from(
            [
                s3_event(bucket, [("ObjectCreated:Put", key) for key in keys]),
                {"s3Bucket": bucket, "s3ObjectKey": keys},
                {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": bucket},
                "CloudTrail validation message.",
                sns("You have chosen to subscribe.", kind="SubscriptionConfirmation"),
            ]
        )
    )
    document = draw(damaged(document, hostile=True))
    for _ in range(draw(st.integers(0, 2))):  # two: SNS inside SNS, no shape AWS sends
        document = draw(damaged(sns(draw(dumped(document))), hostile=True, most=1))
    return draw(dumped(document))


class FakeQueues:
    """The SQS calls the bridge makes, recorded: no AWS in these tests."""

    def __init__(self) -> None:
        self.parked: list[str] = []  # the reasons
        self.deleted = 0

    def get_queue_url(self, QueueName: str) -> dict[str, str]:
        return {"QueueUrl": f"https://sqs.local/{QueueName}"}

    def send_message(
        self, QueueUrl: str, MessageBody: str, MessageAttributes: dict[str, Any]
    ) -> None:
        assert QueueUrl.endswith("-dlq")
        self.parked.append(MessageAttributes[dlq.REASON_ATTRIBUTE]["StringValue"])

    def delete_message(self, QueueUrl: str, ReceiptHandle: str) -> None:
        self.deleted += 1


def handled(body: str) -> tuple[FakeQueues, list[tuple[str, str]]]:
    """What the bridge does with one message: the SQS calls it makes, and the (bucket, key)s
    it hands to the ingest tasks."""
    queues, submitted = FakeQueues(), []

    def submit(bucket: str, key: str) -> None:
        submitted.append((bucket, key))

    with mock.patch.object(bridge.aws, "client", return_value=queues):
        notification_bridge = bridge.NotificationBridge(get_settings(), submit)
    notification_bridge.handle({"MessageId": "m-1", "ReceiptHandle": "r-1", "Body": body})
    return queues, submitted


def assert_parked_or_handed_on(body: str) -> None:
    """The bridge's contract: the message is deleted once, after it was parked with a clear
    reason (``Unparseable``) or its log objects were handed on; nothing else escapes."""
    try:
        notification = parse(body)
    except Unparseable as e:
        assert_clear(str(e))
        notification = None
    queues, submitted = handled(body)
    assert queues.deleted == 1
    if notification is None:
        assert len(queues.parked) == 1 and not submitted
        assert SQS_TEXT.fullmatch(queues.parked[0])
    else:
        for bucket, key in notification.objects:  # what an ingest task's message can carry
            assert isinstance(bucket, str) and isinstance(key, str)
            (bucket + key).encode()
        assert not queues.parked
        assert submitted == [o for o in notification.objects if log_object(*o) is not None]


@QUICK
@given(
    body=st.text()
    | json_values(HOSTILE_SCALARS).map(json.dumps)
    | DEPTHS.map(lambda n: "[" * n + "]" * n)
)
def test_the_bridge_parks_any_text_or_json(body: str) -> None:
    assert_parked_or_handed_on(body)


@QUICK
@given(body=notification_bodies())
def test_the_bridge_parks_or_hands_on_a_damaged_notification(body: str) -> None:
    assert_parked_or_handed_on(body)


@QUICK
@given(
    bucket=BUCKETS,
    created=st.lists(st.tuples(EVENT_NAMES, KEYS), min_size=1, max_size=4),
    wrapped=st.booleans(),
)
def test_s3_notifications_give_back_their_bucket_and_decoded_keys(
    bucket: str, created: list[tuple[str, str]], wrapped: bool
) -> None:
    document = s3_event(bucket, [(name, quote_plus(key, safe="/")) for name, key in created])
    body = json.dumps(sns(json.dumps(document)) if wrapped else document)
    objects = [(bucket, key) for name, key in created if name.startswith("ObjectCreated")]
    notification = parse(body)
    assert notification.objects == objects
    assert (notification.noise is None) == bool(objects)


@QUICK
@given(bucket=BUCKETS, keys=st.lists(KEYS, min_size=1, max_size=4), wrapped=st.booleans())
def test_cloudtrail_messages_give_back_their_keys_as_written(
    bucket: str, keys: list[str], wrapped: bool
) -> None:
    document = {"s3Bucket": bucket, "s3ObjectKey": keys}  # CloudTrail does not URL-encode
    body = json.dumps(sns(json.dumps(document)) if wrapped else document)
    assert parse(body).objects == [(bucket, key) for key in keys]


# --- 2. CloudTrail log files -------------------------------------------------------------

TENANT = "3f1c2b9e-5d4a-4e8f-9a7b-1c2d3e4f5a6b"
# The longest source an S3 object can be: a 63-character bucket, a 1,024-byte key.
SOURCE = "s3://" + "b" * 63 + "/" + "k" * 1024
EXPIRES = 1_900_000_000
# Every rule kopter ships, on (AssumeRole Misuse too), for a tenant with one other account.
EVERY_RULE = RuleSet(tenant_rules.bundled(frozenset({"111122223333"})))
GZIP_LIMIT = 8 << 20  # decompress's limit here: a larger generated file is refused, as it should
ITEM_LIMIT = 400 * 1024  # DynamoDB's, counting attribute names and values in UTF-8
# DynamoDB's key limits, in UTF-8 bytes: the table's and its indexes' (partition, sort).
KEY_LIMITS = {
    "tenant_id": 2048,
    "event_key": 1024,
    "tenant_account": 2048,
    "tenant_event_name": 2048,
    "tenant_principal": 2048,
}


def _ec2_call(
    name: str, request: dict[str, Any], response: dict[str, Any] | None
) -> dict[str, Any]:
    """The EC2 calls ingest also reads as instance changes (shaped as kopter.demo writes)."""
    return {
        "eventVersion": "1.11",
        "userIdentity": {
            "type": "IAMUser",
            "arn": "arn:aws:iam::111111111111:user/alice",
            "accountId": "111111111111",
        },
        "eventTime": "2026-03-01T00:00:00Z",
        "eventSource": "ec2.amazonaws.com",
        "eventName": name,
        "awsRegion": "us-east-1",
        "sourceIPAddress": "203.0.113.10",
        "userAgent": "aws-cli/2.15.0",
        "eventID": "0",
        "readOnly": False,
        "eventType": "AwsApiCall",
        "recipientAccountId": "111111111111",
        "requestParameters": request,
        "responseElements": response,
    }


INSTANCES = {"instancesSet": {"items": [{"instanceId": "i-0123456789abcdef0"}]}}
# Half real samples, half the calls that are instance changes too.
TEMPLATES = st.sampled_from(templates()) | st.sampled_from(
    [
        _ec2_call("RunInstances", {"instanceType": "m5.large"}, INSTANCES),
        _ec2_call("StopInstances", INSTANCES, INSTANCES),
        _ec2_call(
            "ModifyInstanceAttribute",
            {"instanceId": "i-0123456789abcdef0", "instanceType": {"value": "m5.xlarge"}},
            None,
        ),
    ]
)
# CloudTrail's format, now and then of a time that never was (February 30th, 24:60).
TIMES = st.builds(
    "2026-{:02}-{:02}T{:02}:{:02}:{:02}Z".format,
    st.integers(1, 12),
    st.integers(1, 31),
    st.integers(0, 24),
    st.integers(0, 60),
    st.integers(0, 59),
)


@st.composite
def log_records(draw: st.DrawFn, hostile: bool) -> tuple[Any, bool]:
    """(record, whether it was left whole): a real record with a new id and time, damaged or
    not."""
    record = copy.deepcopy(draw(TEMPLATES))
    record["eventID"] = str(uuid.UUID(int=draw(st.integers(0, 2**128 - 1))))
    record["eventTime"] = draw(TIMES)
    if draw(st.booleans()):
        return record, True
    # 400,000 characters: past what an item leaves the request and response, even in ASCII.
    return draw(damaged(record, hostile, huge=400_000)), False


def assert_storable(item: dict[str, Any]) -> None:
    """The item is one DynamoDB's BatchWriteItem takes: within 400 KB, keys within limits."""
    size = 0
    for name, value in item.items():
        [(kind, content)] = value.items()
        if kind == "S":
            assert isinstance(content, str)
            size += len(content.encode())  # raises for a lone surrogate: not sendable
        elif kind == "N":
            assert Decimal(content).is_finite()
            size += len(content)
        else:
            assert kind == "BOOL" and isinstance(content, bool)
            size += 1
        size += len(name.encode())
    assert size <= ITEM_LIMIT, size
    for name, limit in KEY_LIMITS.items():
        if name in item:
            assert 0 < len(item[name]["S"].encode()) <= limit, name
    event_time, event_id = item["event_time"]["S"], item["event_id"]["S"]
    assert len(event_time) == len("2026-03-01T00:00:00Z") and event_id
    assert item["event_key"]["S"] == f"{event_time}#{event_id}"
    assert item["tenant_id"]["S"] == TENANT


def normalized(document: bytes) -> records.Decoded | None:
    """The ingest path up to the writer: None for a file refused whole."""
    try:
        decoded = records.decode(decompress(document, GZIP_LIMIT))
    except Refused as e:
        assert_clear(str(e))
        return None
    for reason in decoded.rejected:
        assert_clear(reason)
    items = list(records.items(decoded.records, TENANT, SOURCE, EXPIRES))
    assert len(items) == len(decoded.records)
    for item in unique_items(items):
        assert_storable(item)
    for record in decoded.records:
        for _, change, _ in ec2_events.from_cloudtrail(record):
            assert change.instance_id.startswith("i-")
            assert all(v is None or isinstance(v, str) for v in (change.detail or {}).values())
    # What the rules read: each record's whole JSON object, beside it.
    objects = list(decoded.objects())
    assert len(objects) == len(decoded.records)
    for record, raw in zip(decoded.records, objects, strict=True):
        assert raw is None or raw["eventID"] == record.eventID
    for match in findings.judge(decoded, EVERY_RULE):
        assert match.rules and match.key.endswith("#" + match.record.eventID)
    return decoded


@st.composite
def hostile_log_files(draw: st.DrawFn) -> bytes:
    entries = draw(st.lists(log_records(hostile=True), max_size=5))
    document = draw(damaged({"Records": [r for r, _ in entries]}, hostile=True, most=1))
    # Lone surrogates as their (not UTF-8) bytes when not escaped to ASCII.
    data = draw(dumped(document)).encode("utf-8", "surrogatepass")
    if draw(st.booleans()):
        data = gzip.compress(data, 1)
    return draw(damaged_bytes(data))


@QUICK
@given(
    document=st.binary()
    | st.binary().map(GZIP_MAGIC.__add__)
    | json_values(HOSTILE_SCALARS).map(lambda v: json.dumps({"Records": v}).encode())
)
def test_any_bytes_are_refused_whole_or_normalized(document: bytes) -> None:
    normalized(document)


@LARGE
@given(document=hostile_log_files())
def test_a_damaged_log_file_is_refused_whole_or_normalized_into_storable_items(
    document: bytes,
) -> None:
    normalized(document)


@LARGE
@given(entries=st.lists(log_records(hostile=False), max_size=6))
def test_a_bad_record_is_rejected_alone_and_counted(entries: list[tuple[Any, bool]]) -> None:
    decoded = normalized(json.dumps({"Records": [record for record, _ in entries]}).encode())
    assert decoded is not None  # strict JSON with a Records list is a log file
    assert len(decoded.records) + len(decoded.rejected) == len(entries)
    kept = {r.eventID for r in decoded.records}
    assert all(record["eventID"] in kept for record, whole in entries if whole)


def gzip_members(data: bytes, cuts: list[int]) -> bytes:
    """``data`` gzipped as several members, cut at ``cuts`` (``cat a.gz b.gz`` makes one)."""
    points = sorted({min(cut, len(data)) for cut in cuts})
    bounds = [0, *points, len(data)]
    return b"".join(gzip.compress(data[a:b], 1) for a, b in itertools.pairwise(bounds))


@st.composite
def shaped(draw: st.DrawFn, entries: list[Any]) -> tuple[str, bytes]:
    """``entries`` written down in one of the shapes ``kopter ingest`` reads, gzipped (in one or
    several members) or not."""
    shape = draw(
        st.sampled_from([records.LOG_FILE, records.ARRAY, records.LINES, records.LOOKUP_EVENTS])
    )
    if shape == records.LINES:
        text = "\n".join(draw(dumped(entry)) for entry in entries)
    elif shape == records.LOOKUP_EVENTS:
        events = [{"EventId": "e", "CloudTrailEvent": draw(dumped(e))} for e in entries]
        text = draw(dumped({"Events": events}))
    else:
        text = draw(dumped(entries if shape == records.ARRAY else {"Records": entries}))
    data = text.encode("utf-8", "surrogatepass")
    if draw(st.booleans()):
        data = gzip_members(data, draw(st.lists(st.integers(0, len(data)), max_size=3)))
    return shape, data


@QUICK
@given(
    values=st.lists(json_values(HOSTILE_SCALARS) | st.just(DEEP), max_size=6),
    separator=st.sampled_from([",", ", ", " ,\n\t"]),
    choices=st.data(),
)
def test_jsonsplit_cuts_any_array_or_object_into_its_values(
    values: list[Any], separator: str, choices: st.DataObject
) -> None:
    """Whatever the values (NaN, lone surrogates escaped or as bytes, nesting past any
    parser's recursion), each is cut out whole, as it was written."""
    texts = [choices.draw(dumped(value)).encode("utf-8", "surrogatepass") for value in values]
    joined = separator.encode().join(texts)
    spans, end = jsonsplit.array_values(b"[ " + joined + b" ] tail", 0)
    assert [(b"[ " + joined)[a:b] for a, b in spans] == texts and end == len(joined) + 4
    keys = [f"k{i}" for i in range(len(texts))]
    members_text = separator.encode().join(
        json.dumps(k).encode() + b" : " + t for k, t in zip(keys, texts, strict=True)
    )
    document = b"{" + members_text + b"}"
    members, end = jsonsplit.object_members(document, 0)
    assert end == len(document) and list(members) == keys
    assert [document[slice(*m.span)] for m in members.values()] == texts


@LARGE
@given(entries=st.lists(log_records(hostile=True), max_size=6), choices=st.data())
def test_a_record_no_parser_takes_is_rejected_alone_in_every_shape(
    entries: list[tuple[Any, bool]], choices: st.DataObject
) -> None:
    """A lone-surrogate escape, nesting past the recursion limit, NaN, bytes that are not
    UTF-8: the record is rejected and counted, the others kept. Only a file with no record at
    all, in a shape other than a log file, is refused whole."""
    shape, document = choices.draw(shaped([record for record, _ in entries]))
    decoded = normalized(document)
    whole = {record["eventID"] for record, kept_whole in entries if kept_whole}
    if decoded is None:
        assert shape != records.LOG_FILE and not whole
        return
    assert decoded.shape == shape
    assert len(decoded.records) + len(decoded.rejected) == len(entries)
    assert whole <= {r.eventID for r in decoded.records}


def test_a_record_at_every_bound_still_fits_an_item() -> None:
    """The largest item a record can make: every bounded field at its bound in 4-byte
    characters, and the free text and the request and response far over theirs."""
    wide = "😀"
    record = {
        "eventTime": wide * 20,
        "eventID": wide * 128,
        "eventSource": wide * 128,
        "eventName": wide * 128,
        "awsRegion": wide * 128,
        "eventType": wide * 128,
        "recipientAccountId": wide * 128,
        "userIdentity": {
            "type": wide * 128,
            "arn": wide * 1024,
            "accountId": wide * 128,
            "invokedBy": wide * 256,
            "sessionContext": {"sessionIssuer": {"arn": wide * 1024}},
        },
        "sourceIPAddress": wide * 256,
        "userAgent": wide * 100_000,
        "readOnly": "true",
        "errorCode": wide * 128,
        "errorMessage": wide * 100_000,
        "requestParameters": {"a": wide * 200_000},
        "responseElements": {"b": wide * 200_000},
    }
    over = {**record, "eventID": wide * 129}
    decoded = normalized(json.dumps({"Records": [record, over]}, ensure_ascii=False).encode())
    assert decoded is not None and len(decoded.records) == len(decoded.rejected) == 1
    [item] = records.items(decoded.records, TENANT, SOURCE, EXPIRES)
    assert item["truncated"] == {"BOOL": True}
    assert "tenant_principal" not in item  # too long for the index key; kept in principal_arn
    assert item["principal_arn"] == {"S": wide * 1024}


@QUICK
@given(payload=st.binary(max_size=2048), limit=st.integers(0, 2048))
def test_decompress_keeps_to_its_limit(payload: bytes, limit: int) -> None:
    document = gzip.compress(payload, 1)
    if len(payload) <= limit:
        assert decompress(document, limit) == payload
    else:
        with pytest.raises(Refused, match="limit") as refused:
            decompress(document, limit)
        assert_clear(str(refused.value))


@QUICK
@given(
    payload=st.binary(max_size=2048),
    cuts=st.lists(st.integers(0, 2048), max_size=4),
    limit=st.integers(0, 2048),
    zeros=st.integers(0, 16),
)
def test_every_gzip_member_is_read_within_the_limit(
    payload: bytes, cuts: list[int], limit: int, zeros: int
) -> None:
    """As `gzip -d` reads them: every member, then the zeros some writers pad with."""
    document = gzip_members(payload, cuts) + bytes(zeros)
    if len(payload) <= limit:
        assert decompress(document, limit) == payload
    else:
        with pytest.raises(Refused, match="limit"):
            decompress(document, limit)


@QUICK
@given(payload=st.binary(max_size=2048), garbage=st.binary(min_size=1, max_size=16))
def test_data_after_the_last_member_is_refused(payload: bytes, garbage: bytes) -> None:
    document = gzip.compress(payload, 1) + garbage
    if not garbage.strip(b"\0"):
        assert decompress(document, GZIP_LIMIT) == payload
        return
    with pytest.raises(Refused, match="corrupt gzip") as refused:
        decompress(document, GZIP_LIMIT)
    assert_clear(str(refused.value))


@QUICK
@given(payload=st.binary(max_size=2048), data=st.data())
def test_truncated_gzip_is_refused(payload: bytes, data: st.DataObject) -> None:
    document = gzip.compress(payload, 1)
    cut = data.draw(st.integers(len(GZIP_MAGIC), len(document) - 1))
    with pytest.raises(Refused, match="corrupt gzip") as refused:
        decompress(document[:cut], GZIP_LIMIT)
    assert_clear(str(refused.value))


def test_a_gzip_bomb_is_refused_without_being_inflated() -> None:
    zeros, deflate = bytes(1 << 20), zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    bomb = b"".join(deflate.compress(zeros) for _ in range(50)) + deflate.flush()
    assert len(bomb) < 100_000  # 50 MB of zeros
    limit = 1 << 20
    tracemalloc.start()
    try:
        with pytest.raises(Refused, match="more than the 1,048,576-byte limit"):
            decompress(bomb, limit)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 3 * limit, peak


# --- 3. Offer files ----------------------------------------------------------------------

REGION = "us-east-1"
# The prices AWS writes: ten decimal places.
GOOD_PRICES = st.decimals(min_value=0, max_value=100_000, places=10).map("{:.10f}".format)
BAD_PRICES = st.sampled_from(
    [
        *["", "1e999", "NaN", "Infinity", "-1", "+1", "0x10", "1_000", " 1", "1 ", "1.", ".5"],
        *["1,5", "\uff11\uff12", "\u0663"],  # full-width and Arabic-Indic digits
        *["1" * 60, "0." + "0" * 40 + "1"],  # past DynamoDB's 38 digits
    ]
)
PRODUCTS = st.builds(
    P,
    instance_type=st.sampled_from(["m5.large", "t3.micro", "c5.xlarge"]) | OBJECT_KEYS,
    os=st.sampled_from(["Linux", "Windows", "RHEL"]),
    tenancy=st.sampled_from(["Shared", "Dedicated"]),
    on_demand=st.none() | GOOD_PRICES | BAD_PRICES,
    reserved=st.dictionaries(
        st.sampled_from(sorted(RESERVED_TERMS)),
        st.tuples(GOOD_PRICES | BAD_PRICES, GOOD_PRICES | BAD_PRICES),
        max_size=2,
    ),
    capacity=st.sampled_from(["Used", None, "UnusedCapacityReservation"]),
    region_code=st.sampled_from([None, "us-east-1-bos-1"]),
    extra=st.dictionaries(st.sampled_from(["note", "operation"]), OBJECT_KEYS, max_size=1),
)
PLAIN_DECIMAL = re.compile(r"[0-9]+(?:\.[0-9]+)?")


@st.composite
def offer_files(draw: st.DrawFn) -> bytes:
    """An offer file as AWS writes it (pretty, ``"key" : value``) or compact, damaged."""
    products = draw(st.lists(PRODUCTS, max_size=5))
    # Huge strings kept to 20,000 characters: the smallest buffers below read them slowly.
    document = draw(damaged(offer(REGION, "v1", products), hostile=True, huge=20_000))
    if draw(st.booleans()):
        text = json.dumps(document, indent=2).replace('": ', '" : ')  # AWS's style
    else:
        text = draw(dumped(document))
    return draw(damaged_bytes(text.encode("utf-8", "surrogatepass")))


@st.composite
def chunkings(draw: st.DrawFn, data: bytes) -> list[bytes]:
    """``data`` as a download may deliver it: chunks of any size, an empty one now and then."""
    sizes = [*draw(st.lists(st.integers(0, 700), max_size=5)), draw(st.integers(1, 700))]
    chunks, at = [], 0
    while at < len(data):
        size = sizes[len(chunks) % len(sizes)]
        chunks.append(data[at : at + size])
        at += size
    return chunks


def catalog_of(chunks: list[bytes]) -> Catalog | None:
    """The catalog of the file, its prices checked; None for a file refused."""
    try:
        catalog = build_catalog(chunks, REGION)
    except OfferFileError as e:
        assert_clear(str(e))
        assert "at byte" in str(e) or "SKU" in str(e), str(e)
        return None
    for key, kept in catalog.kept.items():
        item = to_item(REGION, key, kept, kept.digest(), "v1", "2026-03-01T00:00:00.000000+0000")
        numbers = [
            term["M"][n]["N"]
            for term in item["reserved"]["L"]
            for n in ("upfront_usd", "hourly_usd")
        ]
        if "on_demand_hourly_usd" in item:
            numbers.append(item["on_demand_hourly_usd"]["N"])
        for number in numbers:  # as DynamoDB is sent them
            assert PLAIN_DECIMAL.fullmatch(number) and len(number.replace(".", "")) <= 38, number
        row = catalog.row(key)
        prices = [row.on_demand_hourly_usd] if row.on_demand_hourly_usd is not None else []
        prices += [price for term in row.reserved for price in (term.upfront_usd, term.hourly_usd)]
        assert all(price.is_finite() and price >= 0 for price in prices)
    return catalog


# Small buffers make a file of a few KB cross every boundary a 300 MB file crosses: a batch cut
# by the brace count or by the tokenizer, a chunk ending anywhere.
BUFFERS = st.tuples(
    st.sampled_from([offerfile.BATCH_BYTES, 1024, 128]),
    st.sampled_from([offerfile.EXACT_WINDOW, 256, 16]),
)


def assert_refused_or_priced_alike_in_any_chunking(data: bytes, choices: st.DataObject) -> None:
    """Read whole with the reader's own buffers, or in random chunks with small buffers: the
    same refusal or the same catalog."""
    whole = catalog_of([data])
    batch_bytes, exact_window = choices.draw(BUFFERS)
    with (
        mock.patch.object(offerfile, "BATCH_BYTES", batch_bytes),
        mock.patch.object(offerfile, "EXACT_WINDOW", exact_window),
    ):
        chunked = catalog_of(choices.draw(chunkings(data)))
    assert (whole is None) == (chunked is None)
    if whole is not None and chunked is not None:
        assert chunked.kept == whole.kept and chunked.products == whole.products


@QUICK
@given(
    data=st.binary()
    | st.dictionaries(
        st.sampled_from(["products", "terms", "version"]), json_values(HOSTILE_SCALARS)
    ).map(lambda document: json.dumps(document).encode()),
    choices=st.data(),
)
def test_any_bytes_are_refused_as_an_offer_file_or_priced(
    data: bytes, choices: st.DataObject
) -> None:
    assert_refused_or_priced_alike_in_any_chunking(data, choices)


@LARGE
@given(data=offer_files(), choices=st.data())
def test_a_damaged_offer_file_is_refused_or_priced_alike_in_any_chunking(
    data: bytes, choices: st.DataObject
) -> None:
    assert_refused_or_priced_alike_in_any_chunking(data, choices)
