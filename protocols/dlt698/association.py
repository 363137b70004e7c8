"""Association APDUs of DL/T 698.45-2017 (clause 7.2): LINK, CONNECT and RELEASE.

LINK is the meter's (or terminal's) login and heartbeat; CONNECT negotiates an application
association (conformance, sizes, security mechanism), RELEASE ends it.  Frozen dataclasses;
their wire forms are ``encoder`` / ``decoder``'s.  ``apdu`` re-exports every name.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING

from protocols.dlt698.datetimes import DateTime, DateTimeS

if TYPE_CHECKING:
    from protocols.dlt698.apdu import FollowReport, TimeTag


class LinkType(IntEnum):
    """LINK-Request type."""

    LOGIN = 0
    HEARTBEAT = 1
    LOGOUT = 2


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


__all__ = [
    "FUNCTION_CONFORMANCE",
    "PROTOCOL_CONFORMANCE",
    "PUBLIC",
    "ConnectMechanism",
    "ConnectRequest",
    "ConnectResponse",
    "FactoryVersion",
    "LinkRequest",
    "LinkResponse",
    "LinkType",
    "ReleaseNotification",
    "ReleaseRequest",
    "ReleaseResponse",
]
