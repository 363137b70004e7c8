"""Typed APDUs (DL/T 698.45-2017 clause 7.2 services), frozen dataclasses.

Requests flow client → server (the gateway to the meter); responses, reports and LINK requests
server → client.  ``piid`` is the raw PIID (requests) or PIID-ACD (responses) byte: bit 7
priority, bit 6 ACD (responses: the meter has a report waiting), bits 0-5 the sequence number.
A meter's refusal is data, not an exception: ``ResultNormal.dar``, ``SetResponse.dar`` …
The association services (LINK, CONNECT, RELEASE) are ``association``'s, re-exported here.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from protocols.dlt698.association import (
    FUNCTION_CONFORMANCE,
    PROTOCOL_CONFORMANCE,
    PUBLIC,
    ConnectMechanism,
    ConnectRequest,
    ConnectResponse,
    FactoryVersion,
    LinkRequest,
    LinkResponse,
    LinkType,
    ReleaseNotification,
    ReleaseRequest,
    ReleaseResponse,
)
from protocols.dlt698.axdr import Data
from protocols.dlt698.datetimes import TI, DateTimeS
from protocols.dlt698.descriptors import CSD, OAD, OMD
from protocols.dlt698.selection import RSD


class Tag(IntEnum):
    """APDU tags."""

    LINK_REQUEST = 1
    CONNECT_REQUEST = 2
    RELEASE_REQUEST = 3
    GET_REQUEST = 5
    SET_REQUEST = 6
    ACTION_REQUEST = 7
    REPORT_RESPONSE = 8
    SECURITY_REQUEST = 16
    LINK_RESPONSE = 129
    CONNECT_RESPONSE = 130
    RELEASE_RESPONSE = 131
    RELEASE_NOTIFICATION = 132
    GET_RESPONSE = 133
    SET_RESPONSE = 134
    ACTION_RESPONSE = 135
    REPORT_NOTIFICATION = 136
    SECURITY_RESPONSE = 144
    ERROR_RESPONSE = 238


@dataclass(frozen=True, slots=True)
class TimeTag:
    """Send time and allowed transmission delay; the server drops a request that is too late."""

    send_time: DateTimeS
    delay: TI


# ------------------------------------------------------------------ results


@dataclass(frozen=True, slots=True)
class ResultNormal:
    """A-ResultNormal: an attribute and its value, or the DAR refusing it (``data`` None)."""

    oad: OAD
    data: Data | None = None
    dar: int = 0


@dataclass(frozen=True, slots=True)
class ResultRecord:
    """A-ResultRecord: columns (RCSD) and rows of Data, or a DAR (``rows`` None)."""

    oad: OAD
    columns: tuple[CSD, ...]
    rows: tuple[tuple[Data, ...], ...] | None = ()
    dar: int = 0


FollowReport = tuple[ResultNormal, ...] | tuple[ResultRecord, ...] | None

# ------------------------------------------------------------------ GET


@dataclass(frozen=True, slots=True)
class GetRequestNormal:
    """Read one attribute."""

    piid: int
    oad: OAD
    time_tag: TimeTag | None = None


@dataclass(frozen=True, slots=True)
class GetRequestNormalList:
    """Read several attributes in one request."""

    piid: int
    oads: tuple[OAD, ...]
    time_tag: TimeTag | None = None


@dataclass(frozen=True, slots=True)
class GetRequestRecord:
    """Read records of a record attribute (frozen data, events) selected by ``rsd``."""

    piid: int
    oad: OAD
    rsd: RSD
    columns: tuple[CSD, ...] = ()  # empty: every column
    time_tag: TimeTag | None = None


@dataclass(frozen=True, slots=True)
class GetRequestNext:
    """Ask for the block after ``last_block`` of a response the server split."""

    piid: int
    last_block: int
    time_tag: TimeTag | None = None


@dataclass(frozen=True, slots=True)
class GetResponseNormal:
    """The attribute read (or its DAR)."""

    piid: int
    result: ResultNormal
    follow_report: FollowReport = None
    time_tag: TimeTag | None = None


@dataclass(frozen=True, slots=True)
class GetResponseNormalList:
    """The attributes read, one result each, in request order."""

    piid: int
    results: tuple[ResultNormal, ...]
    follow_report: FollowReport = None
    time_tag: TimeTag | None = None


@dataclass(frozen=True, slots=True)
class GetResponseRecord:
    """The records selected."""

    piid: int
    result: ResultRecord
    follow_report: FollowReport = None
    time_tag: TimeTag | None = None


@dataclass(frozen=True, slots=True)
class GetResponseNext:
    """One block of a split response: ``kind`` 0 DAR, 1 normal results, 2 record results."""

    piid: int
    last: bool
    block: int
    kind: int
    results: tuple[ResultNormal, ...] | tuple[ResultRecord, ...] = ()
    dar: int = 0
    follow_report: FollowReport = None
    time_tag: TimeTag | None = None


# ------------------------------------------------------------------ SET, ACTION, REPORT


@dataclass(frozen=True, slots=True)
class SetRequestNormal:
    """Write one attribute."""

    piid: int
    oad: OAD
    value: Data
    time_tag: TimeTag | None = None


@dataclass(frozen=True, slots=True)
class SetResponseNormal:
    """Write result (DAR 0 = done)."""

    piid: int
    oad: OAD
    dar: int = 0
    follow_report: FollowReport = None
    time_tag: TimeTag | None = None


@dataclass(frozen=True, slots=True)
class ActionRequestNormal:
    """Invoke one method (relay trip/close, keep power, broadcast time …)."""

    piid: int
    omd: OMD
    parameter: Data
    time_tag: TimeTag | None = None


@dataclass(frozen=True, slots=True)
class ActionResponseNormal:
    """Method result (DAR) and optional return data."""

    piid: int
    omd: OMD
    dar: int = 0
    data: Data | None = None
    follow_report: FollowReport = None
    time_tag: TimeTag | None = None


@dataclass(frozen=True, slots=True)
class ReportNotification:
    """The server reports attributes (``records`` False) or records (True) unasked."""

    piid: int
    results: tuple[ResultNormal, ...] | tuple[ResultRecord, ...]
    records: bool = False
    follow_report: FollowReport = None
    time_tag: TimeTag | None = None


@dataclass(frozen=True, slots=True)
class ReportResponse:
    """The client acknowledges a report (the OADs it received)."""

    piid: int
    oads: tuple[OAD, ...]
    records: bool = False
    time_tag: TimeTag | None = None


# ------------------------------------------------------------------ SECURITY, ERROR


class Verification(IntEnum):
    """SECURITY-Request data verification choice."""

    SID_MAC = 0
    RN = 1
    RN_MAC = 2
    SID = 3


@dataclass(frozen=True, slots=True)
class SecurityRequest:
    """A wrapped request: plaintext (or ciphertext) APDU and its verification info."""

    apdu: bytes
    verification: Verification
    rn: bytes = b""  # RN / RN_MAC
    mac: bytes = b""  # SID_MAC / RN_MAC
    sid: int = 0  # SID / SID_MAC
    sid_extra: bytes = b""
    encrypted: bool = False


@dataclass(frozen=True, slots=True)
class SecurityResponse:
    """A wrapped response: APDU (or a DAR) and the server's MAC over it."""

    apdu: bytes
    mac: bytes | None = None
    encrypted: bool = False
    dar: int | None = None  # set when the server refused the secured request


@dataclass(frozen=True, slots=True)
class ErrorResponse:
    """The server could not parse (1) or does not support (2) the request, or other (255)."""

    piid: int
    error: int


Request = (
    ConnectRequest
    | ReleaseRequest
    | GetRequestNormal
    | GetRequestNormalList
    | GetRequestRecord
    | GetRequestNext
    | SetRequestNormal
    | ActionRequestNormal
    | ReportResponse
    | LinkResponse
    | SecurityRequest
)
Response = (
    ConnectResponse
    | ReleaseResponse
    | ReleaseNotification
    | GetResponseNormal
    | GetResponseNormalList
    | GetResponseRecord
    | GetResponseNext
    | SetResponseNormal
    | ActionResponseNormal
    | ReportNotification
    | LinkRequest
    | SecurityResponse
    | ErrorResponse
)
Apdu = Request | Response


__all__ = [
    "FUNCTION_CONFORMANCE",
    "PROTOCOL_CONFORMANCE",
    "PUBLIC",
    "ActionRequestNormal",
    "ActionResponseNormal",
    "Apdu",
    "ConnectMechanism",
    "ConnectRequest",
    "ConnectResponse",
    "ErrorResponse",
    "FactoryVersion",
    "FollowReport",
    "GetRequestNext",
    "GetRequestNormal",
    "GetRequestNormalList",
    "GetRequestRecord",
    "GetResponseNext",
    "GetResponseNormal",
    "GetResponseNormalList",
    "GetResponseRecord",
    "LinkRequest",
    "LinkResponse",
    "LinkType",
    "ReleaseNotification",
    "ReleaseRequest",
    "ReleaseResponse",
    "ReportNotification",
    "ReportResponse",
    "Request",
    "Response",
    "ResultNormal",
    "ResultRecord",
    "SecurityRequest",
    "SecurityResponse",
    "SetRequestNormal",
    "SetResponseNormal",
    "Tag",
    "TimeTag",
    "Verification",
]
