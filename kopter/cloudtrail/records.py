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

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any

import msgspec

from kopter.errors import Refused

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


_file_decoder = msgspec.json.Decoder(_LogFile)
_raw_file_decoder = msgspec.json.Decoder(_RawLogFile)
_record_decoder = msgspec.json.Decoder(Record)
_sign_in_decoder = msgspec.json.Decoder(_SignInData)


class NotALogFile(Refused):
    """The bytes are not a CloudTrail log file: not JSON, or no ``Records`` list."""


@dataclass
class Decoded:
    records: list[Record] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)  # why each bad record was refused


def decode(document: bytes) -> Decoded:
    try:
        return _decode(document)
    except RecursionError:  # msgspec recurses once per level; no CloudTrail record nests so deep
        raise NotALogFile("not a CloudTrail log file: JSON nested too deeply") from None


def _decode(document: bytes) -> Decoded:
    # msgspec raises UnicodeDecodeError, not a DecodeError, for a string that is not UTF-8.
    try:
        return Decoded(_file_decoder.decode(document).Records)
    except (msgspec.ValidationError, UnicodeDecodeError):
        pass  # a record of an unknown shape: decode them one at a time, to keep the others
    except msgspec.DecodeError as e:
        raise NotALogFile(f"not a CloudTrail log file: {e}") from None
    try:
        raw_records = _raw_file_decoder.decode(document).Records
    except (msgspec.DecodeError, UnicodeDecodeError) as e:
        raise NotALogFile(f"not a CloudTrail log file: {e}") from None
    out = Decoded()
    for i, raw in enumerate(raw_records):
        try:
            out.records.append(_record_decoder.decode(raw))
        except (msgspec.DecodeError, UnicodeDecodeError) as e:
            out.rejected.append(f"record {i}: {e}")
    return out


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


def items(
    records: list[Record], tenant_id: str, source: str, expires_at: int | None
) -> Iterator[dict[str, Any]]:
    """A DynamoDB item for each record, in the AuditLogEvents table's attribute names (see
    ``kopter.tables.AuditLogEvent``), ready for BatchWriteItem."""
    tenant_prefix = tenant_id + "#"
    tenant, origin = {"S": tenant_id}, {"S": source}
    whole, truncated = {"BOOL": False}, {"BOOL": True}
    read_only, read_write = {"BOOL": True}, {"BOOL": False}
    expires = {"N": str(expires_at)} if expires_at is not None else None
    event_types: dict[str, dict[str, str]] = {}  # a handful of values, shared like the others
    for r in records:
        identity = r.userIdentity
        account = r.recipientAccountId or (identity and identity.accountId) or "unknown"
        item: dict[str, Any] = {
            "tenant_id": tenant,
            "event_key": {"S": f"{r.eventTime}#{r.eventID}"},
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
