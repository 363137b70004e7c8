"""Typed APDUs (DL/T 698.45-2017 clause 7.2 services), frozen dataclasses.

Requests flow client → server (the gateway to the meter); responses, reports and LINK requests
server → client.  ``piid`` is the raw PIID (requests) or PIID-ACD (responses) byte: bit 7
priority, bit 6 ACD (responses: the meter has a report waiting), bits 0-5 the sequence number.
A meter's refusal is data, not an exception: ``ResultNormal.dar``, ``SetResponse.dar`` …
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from protocols.dlt698.axdr import Data
from protocols.dlt698.datetimes import TI, DateTime, DateTimeS
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


class LinkType(IntEnum):
    """LINK-Request type."""

    LOGIN = 0
    HEARTBEAT = 1
    LOGOUT = 2


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

# ------------------------------------------------------------------ LINK, CONNECT, RELEASE


@dataclass(frozen=True, slots=True)
class LinkRequest:
    """A meter or terminal logs in, beats or logs out (server → client, C = 81H)."""

    piid: int
    kind: LinkType
    heartbeat: int  # seconds
    time: DateTime


@dataclass(frozen=True, slots=True)
class LinkResponse:
    """The client's answer to a LINK-Request (result bit 7: clock trusted; 0-2: 0 success)."""

    piid: int
    result: int
    request_time: DateTime
    receive_time: DateTime
    response_time: DateTime


@dataclass(frozen=True, slots=True)
class ConnectMechanism:
    """ConnectMechanismInfo: 0 public (no security), 1 password, 2 symmetric, 3 signature."""

    kind: int = 0
    password: str = ""
    cipher: bytes = b""
    signature: bytes = b""


PUBLIC = ConnectMechanism()
PROTOCOL_CONFORMANCE = b"\xff" * 8  # everything, as the public tools propose; the server trims
FUNCTION_CONFORMANCE = b"\xff" * 16


@dataclass(frozen=True, slots=True)
class ConnectRequest:
    """Open an application association (the client's negotiation proposal)."""

    piid: int = 0
    version: int = 0x0010  # what public tools send; the PyPI peer refuses 0x0016 (result 5)
    protocol_conformance: bytes = PROTOCOL_CONFORMANCE  # bit-string(64)
    function_conformance: bytes = FUNCTION_CONFORMANCE  # bit-string(128)
    send_max: int = 1024
    receive_max: int = 1024
    window: int = 1
    apdu_max: int = 1024
    timeout: int = 7200  # seconds the association lives
    mechanism: ConnectMechanism = PUBLIC
    time_tag: TimeTag | None = None


@dataclass(frozen=True, slots=True)
class FactoryVersion:
    """Server vendor: fixed-size visible strings (4, 4, 6, 4, 6, 8 characters)."""

    vendor: str = "TAIQ"
    software: str = "0001"
    software_date: str = "261206"
    hardware: str = "0001"
    hardware_date: str = "261206"
    extra: str = "00000000"


@dataclass(frozen=True, slots=True)
class ConnectResponse:
    """The negotiated association; ``result`` 0 allows it (1 password error, 5 version …)."""

    piid: int
    factory: FactoryVersion
    version: int
    protocol_conformance: bytes
    function_conformance: bytes
    send_max: int
    receive_max: int
    window: int
    apdu_max: int
    timeout: int
    result: int = 0
    server_random: bytes | None = None  # SecurityData, present for symmetric/signature
    server_signature: bytes = b""
    follow_report: FollowReport = None
    time_tag: TimeTag | None = None


@dataclass(frozen=True, slots=True)
class ReleaseRequest:
    """Close the application association."""

    piid: int = 0
    time_tag: TimeTag | None = None


@dataclass(frozen=True, slots=True)
class ReleaseResponse:
    """Association closed (result 0)."""

    piid: int
    result: int = 0
    follow_report: FollowReport = None
    time_tag: TimeTag | None = None


@dataclass(frozen=True, slots=True)
class ReleaseNotification:
    """The server closed the association itself (timeout)."""

    piid: int
    established: DateTimeS
    now: DateTimeS
    follow_report: FollowReport = None
    time_tag: TimeTag | None = None


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
