"""CloudTrail records: decoded from a log file and normalized into audit-log items.

A log file is ``{"Records": [...]}``. Each record is decoded on its own, so one record of an
unknown shape is rejected (and counted) without losing the rest of the file. Decoding is typed
(msgspec): only the fields kopter keeps are materialized; ``requestParameters`` and
``responseElements`` stay raw bytes until they are re-encoded as compact JSON, and of
``additionalEventData`` only a console sign-in's ``MFAUsed`` is read (the daily audit's rule).

Speed: decoded structs are not tracked by the garbage collector (they hold no cycles), and items
are yielded one at a time for the writer to batch, so a large file never holds all its items at
once; the constant attribute values are shared between items (botocore only reads them).

An item must fit DynamoDB's 400 KB limit: request and response share a budget, and a record over
it is stored with both cut to fit and ``truncated`` set, never dropped; so is a record whose
free-text error message or user agent is over its bound. The other strings are bounded by the
schema (a record past a bound is rejected: no real record comes near), so that keys fit
DynamoDB's key limits and the whole item its size limit.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any

import msgspec

from kopter.cloudtrail import jsonsplit
from kopter.errors import Refused
from kopter.tables import AuditLogEvent

# What is left of DynamoDB's 400 KB (409,600 bytes) for request + response once the other
# attributes are in: at the bounds below, 4 UTF-8 bytes a character, with a tenant id of up to 64
# characters and a source of up to 4 KB, those take under 44 KB.
PAYLOAD_BUDGET = 360_000
MAX_USER_AGENT = 1024  # characters kept of the free text; the rest is cut, and ``truncated`` set
MAX_ERROR_MESSAGE = 4096
MAX_PARTITION_KEY = 2048  # bytes, DynamoDB's limit (an index's too); a sort key's is 1,024
_NULL = msgspec.Raw(b"null")

# CloudTrail's "2025-03-06T02:25:06Z" has 20 characters. Its format is not checked: a pattern
# costs msgspec a third of the decode, and a malformed time only sorts out of place.
EventTime = Annotated[str, msgspec.Meta(min_length=20, max_length=20)]
# Ids, names, regions, account ids: at most 512 bytes, so ``eventTime#eventID`` fits a sort key
# and ``tenant#name`` a partition key.
Name = Annotated[str, msgspec.Meta(max_length=128)]
Host = Annotated[str, msgspec.Meta(max_length=256)]  # an IP address or a service's name
Arn = Annotated[str, msgspec.Meta(max_length=1024)]  # an IAM path is up to 512 characters


class SessionIssuer(msgspec.Struct, gc=False):
    arn: Arn | None = None


class SessionContext(msgspec.Struct, gc=False):
    sessionIssuer: SessionIssuer | None = None


class UserIdentity(msgspec.Struct, gc=False):
    type: Name | None = None
    arn: Arn | None = None
    accountId: Name | None = None
    invokedBy: Host | None = None
    sessionContext: SessionContext | None = None


class Record(msgspec.Struct, gc=False):
    eventTime: EventTime
    eventID: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    eventSource: Name
    eventName: Name
    awsRegion: Name
    eventType: Name | None = None
    recipientAccountId: Name | None = None
    userIdentity: UserIdentity | None = None
    sourceIPAddress: Host | None = None
    userAgent: str | None = None
    readOnly: bool | str | None = None
    errorCode: Name | None = None
    errorMessage: str | None = None
    requestParameters: msgspec.Raw = _NULL
    responseElements: msgspec.Raw = _NULL
    additionalEventData: msgspec.Raw = _NULL


class _SignInData(msgspec.Struct, gc=False):
    MFAUsed: Annotated[str, msgspec.Meta(max_length=16)] | None = None  # "Yes" or "No"


class _LogFile(msgspec.Struct, gc=False):
    Records: list[Record]


class _RawLogFile(msgspec.Struct, gc=False):
    Records: list[msgspec.Raw]


class _LookupEvent(msgspec.Struct, gc=False):
    """An event of `aws cloudtrail lookup-events`: its record is the JSON text it carries."""

    CloudTrailEvent: str


class _LookupEvents(msgspec.Struct, gc=False):
    Events: list[msgspec.Raw]


_file_decoder = msgspec.json.Decoder(_LogFile)
_raw_file_decoder = msgspec.json.Decoder(_RawLogFile)
_array_decoder = msgspec.json.Decoder(list[Record])
_raw_array_decoder = msgspec.json.Decoder(list[msgspec.Raw])
_lookup_decoder = msgspec.json.Decoder(_LookupEvents)
_record_decoder = msgspec.json.Decoder(Record)
_event_decoder = msgspec.json.Decoder(_LookupEvent)
_sign_in_decoder = msgspec.json.Decoder(_SignInData)
_object_decoder = msgspec.json.Decoder()
# What msgspec raises for a document it cannot take: not JSON, of another shape, not UTF-8
# (UnicodeDecodeError, not a DecodeError), nested past the recursion limit.
_UNDECODABLE = (msgspec.DecodeError, UnicodeDecodeError, RecursionError)
_FIRST_BYTE = re.compile(rb"[^ \t\r\n]")
_BOM = b"\xef\xbb\xbf"

# The shapes records come in (``Decoded.shape``).
LOG_FILE = "log file"  # {"Records": [...]}, as a trail delivers it
ARRAY = "JSON array"  # [record, ...], as incident-response datasets and tools export
LINES = "JSON lines"  # a record a line
LOOKUP_EVENTS = "lookup-events output"  # {"Events": [{"CloudTrailEvent": "<record>"}, ...]}


class NotALogFile(Refused):
    """The bytes hold no CloudTrail records in any shape kopter reads."""


@dataclass
class Decoded:
    records: list[Record] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)  # why each bad record was refused
    shape: str = LOG_FILE
    # Each record's own JSON, beside ``records``: the spans of ``document`` when it decoded at
    # once (found only when ``objects`` asks), else each record's text as it was decoded.
    document: bytes | None = field(default=None, repr=False)
    texts: list[Any] = field(default_factory=list, repr=False)

    def objects(self) -> Iterator[dict[str, Any] | None]:
        """Each record as the JSON object CloudTrail wrote, every field of it (what detection
        rules read), one at a time and in the order of ``records``; None for one whose JSON
        only the typed decoder takes (nested past the generic decoder's limit)."""
        texts: list[Any] = self.texts
        if self.document is not None and self.shape == ARRAY:
            texts = _raw_array_decoder.decode(self.document)
        elif self.document is not None:
            texts = _raw_file_decoder.decode(self.document).Records
        for text in texts:
            try:
                value = _object_decoder.decode(text)
            except _UNDECODABLE:
                value = None
            yield value if isinstance(value, dict) else None


def decode(document: bytes) -> Decoded:
    """The records of a log file, a JSON array of records, JSON lines, or `aws cloudtrail
    lookup-events` output (its events, or a record a line, may also be lookup-events events).

    Each record is decoded on its own when the whole does not decode at once: one record of an
    unknown shape, with an escape no parser takes, or nested past the recursion limit, is
    rejected and counted, and the rest goes in. A log file whose every record is bad is still a
    log file; any other shape that holds no record at all is refused, as is what is not JSON."""
    if document.startswith(_BOM):
        document = document[len(_BOM) :]
    first = _FIRST_BYTE.search(document)
    if first is None:
        raise NotALogFile("not a CloudTrail log file: empty")
    start = first.start()
    try:
        if document[start] == ord("["):
            return _array(document, start)
        if document[start] == ord("{"):
            return _object(document, start)
    except jsonsplit.Malformed as e:
        raise NotALogFile(f"not a CloudTrail log file: {e}") from None
    lines = _lines(document)
    if len(lines) > 1:  # JSON lines whose first line is no record
        return _entries(lines, LINES)
    raise NotALogFile("not a CloudTrail log file: not JSON")


def _lines(document: bytes) -> list[bytes]:
    return [line for line in document.split(b"\n") if _FIRST_BYTE.search(line)]


def _array(document: bytes, start: int) -> Decoded:
    try:
        return Decoded(_array_decoder.decode(document), shape=ARRAY, document=document)
    except _UNDECODABLE:
        pass
    try:
        return _entries(_raw_array_decoder.decode(document), ARRAY)
    except _UNDECODABLE:
        pass
    spans, end = jsonsplit.array_values(document, start)
    if _FIRST_BYTE.search(document, end):  # more than one value: a record a line
        return _entries(_lines(document), LINES)
    return _entries([document[a:b] for a, b in spans], ARRAY)


def _object(document: bytes, start: int) -> Decoded:
    try:
        return Decoded(_file_decoder.decode(document).Records, document=document)
    except _UNDECODABLE:
        pass
    try:
        return _entries(_raw_file_decoder.decode(document).Records, LOG_FILE)
    except _UNDECODABLE:
        pass
    try:
        return _entries(_lookup_decoder.decode(document).Events, LOOKUP_EVENTS)
    except _UNDECODABLE:
        pass
    members, end = jsonsplit.object_members(document, start)
    if _FIRST_BYTE.search(document, end):  # more than one value: a record a line
        return _entries(_lines(document), LINES)
    for key, shape in (("Records", LOG_FILE), ("Events", LOOKUP_EVENTS)):
        member = members.get(key)
        if member is not None and member.values is not None:
            return _entries([document[a:b] for a, b in member.values], shape)
    return _entries([document[start:end]], LINES)  # a single record


def _entries(raws: list[Any], shape: str) -> Decoded:
    """Each record (or lookup-events event) decoded on its own."""
    out = Decoded(shape=shape)
    label = "line" if shape == LINES else "event" if shape == LOOKUP_EVENTS else "record"
    events_first = shape == LOOKUP_EVENTS
    for i, raw in enumerate(raws, 1 if shape == LINES else 0):
        try:
            record, text = _record(raw, events_first)
        except _UNDECODABLE as e:
            reason = "nested too deeply" if isinstance(e, RecursionError) else str(e)
            out.rejected.append(f"{label} {i}: {reason}")
        else:
            out.records.append(record)
            out.texts.append(text)
    if shape != LOG_FILE and out.rejected and not out.records:
        raise NotALogFile(f"not a CloudTrail log file: no record in the {shape}: {out.rejected[0]}")
    return out


def _record(raw: Any, event_first: bool) -> tuple[Record, Any]:
    """A record, or the record of a lookup-events event, and the record's JSON."""
    if event_first:
        try:
            text = _event_decoder.decode(raw).CloudTrailEvent
            return _record_decoder.decode(text), text
        except msgspec.ValidationError:
            return _record_decoder.decode(raw), raw
    try:
        return _record_decoder.decode(raw), raw
    except msgspec.ValidationError as not_a_record:
        try:
            event = _event_decoder.decode(raw)
        except msgspec.ValidationError:
            raise not_a_record from None
        return _record_decoder.decode(event.CloudTrailEvent), event.CloudTrailEvent


def _mfa_used(raw: msgspec.Raw) -> str | None:
    """A console sign-in's ``additionalEventData.MFAUsed``; None when the record has none (a
    shape kopter does not know is not a reason to refuse the record)."""
    if raw == _NULL:
        return None
    try:
        return _sign_in_decoder.decode(raw).MFAUsed
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


def _compact(raw: msgspec.Raw) -> bytes:
    if raw == _NULL:
        return b""
    return bytes(msgspec.json.format(raw, indent=-1))


def account_of(record: Record) -> str:
    """The account a record is kept under: the one it was delivered to, or its caller's."""
    identity = record.userIdentity
    return record.recipientAccountId or (identity and identity.accountId) or "unknown"


def items(
    records: list[Record], tenant_id: str, source: str, expires_at: int | None
) -> Iterator[dict[str, Any]]:
    """A DynamoDB item for each record, in the AuditLogEvents table's attribute names (see
    ``kopter.tables.AuditLogEvent``), ready for BatchWriteItem."""
    # The tenant's keys (AuditLogEvent.account_key and the others) are its prefix and a part:
    # the prefix is made once for the batch (tests/test_records_parity.py holds them equal).
    tenant_prefix = tenant_id + "#"
    tenant, origin = {"S": tenant_id}, {"S": source}
    whole, truncated = {"BOOL": False}, {"BOOL": True}
    read_only, read_write = {"BOOL": True}, {"BOOL": False}
    expires = {"N": str(expires_at)} if expires_at is not None else None
    event_types: dict[str, dict[str, str]] = {}  # a handful of values, shared like the others
    for r in records:
        identity = r.userIdentity
        account = account_of(r)
        item: dict[str, Any] = {
            "tenant_id": tenant,
            "event_key": {"S": AuditLogEvent.sort_key(r.eventTime, r.eventID)},
            "tenant_account": {"S": tenant_prefix + account},
            "tenant_event_name": {"S": tenant_prefix + r.eventName},
            "event_time": {"S": r.eventTime},
            "event_id": {"S": r.eventID},
            "account_id": {"S": account},
            "region": {"S": r.awsRegion},
            "event_source": {"S": r.eventSource},
            "event_name": {"S": r.eventName},
            "source_object": origin,
            "truncated": whole,
        }
        if r.eventType:
            item["event_type"] = event_types.get(r.eventType) or event_types.setdefault(
                r.eventType, {"S": r.eventType}
            )
        if r.eventName == "ConsoleLogin":
            mfa = _mfa_used(r.additionalEventData)
            if mfa:
                item["mfa_used"] = {"S": mfa}
        if identity is not None:
            if identity.arn:
                item["principal_arn"] = {"S": identity.arn}
                principal = tenant_prefix + identity.arn
                # Too long for a key (only a long non-ASCII ARN can be): out of the index only.
                if len(principal) <= MAX_PARTITION_KEY // 4 or _fits_key(principal):
                    item["tenant_principal"] = {"S": principal}
            if identity.type:
                item["principal_type"] = {"S": identity.type}
            if identity.accountId:
                item["principal_account"] = {"S": identity.accountId}
            if identity.invokedBy:
                item["invoked_by"] = {"S": identity.invokedBy}
            context = identity.sessionContext
            if context is not None and context.sessionIssuer and context.sessionIssuer.arn:
                item["session_issuer"] = {"S": context.sessionIssuer.arn}
        if r.sourceIPAddress:
            item["source_ip"] = {"S": r.sourceIPAddress}
        if r.userAgent:
            item["user_agent"] = {"S": r.userAgent}
            if len(r.userAgent) > MAX_USER_AGENT:
                item["user_agent"] = {"S": r.userAgent[:MAX_USER_AGENT]}
                item["truncated"] = truncated
        flag = r.readOnly
        if flag is not None:
            if isinstance(flag, str):
                flag = flag.lower() == "true"
            item["read_only"] = read_only if flag else read_write
        if r.errorCode:
            item["error_code"] = {"S": r.errorCode}
        if r.errorMessage:
            item["error_message"] = {"S": r.errorMessage}
            if len(r.errorMessage) > MAX_ERROR_MESSAGE:
                item["error_message"] = {"S": r.errorMessage[:MAX_ERROR_MESSAGE]}
                item["truncated"] = truncated
        request, response = _compact(r.requestParameters), _compact(r.responseElements)
        if len(request) + len(response) > PAYLOAD_BUDGET:
            request, response = _fit(request, response)
            item["truncated"] = truncated
        if request:
            item["request"] = {"S": request.decode(errors="ignore")}
        if response:
            item["response"] = {"S": response.decode(errors="ignore")}
        if expires is not None:
            item["expires_at"] = expires
        yield item


def _fits_key(value: str) -> bool:
    return len(value.encode()) <= MAX_PARTITION_KEY


def _fit(request: bytes, response: bytes) -> tuple[bytes, bytes]:
    """Cut request and response (in bytes, as DynamoDB counts) to share the budget, the smaller
    keeping all it can. A cut through a UTF-8 sequence is dropped when decoded."""
    half = PAYLOAD_BUDGET // 2
    if len(request) <= half:
        return request, response[: PAYLOAD_BUDGET - len(request)]
    if len(response) <= half:
        return request[: PAYLOAD_BUDGET - len(response)], response
    return request[:half], response[:half]
