"""Control codes of DL/T 645-2007 and -1997 and the abnormal reply's error byte.

Control byte::

    D7 direction   0 = master → meter, 1 = meter → master
    D6 abnormal    1 = abnormal reply (data is the error byte)
    D5 follow-up   1 = more frames follow
    D4..D0         function code (the tables below, per version)

Normal reply = request | 0x80, with more frames | 0xA0, abnormal | 0xC0.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, StrEnum

from protocols.dlt645.errors import Dlt645Error

DIRECTION_BIT = 0x80
ABNORMAL_BIT = 0x40
FOLLOW_UP_BIT = 0x20
FUNCTION_MASK = 0x1F


class Version(Enum):
    """Which edition of the standard a meter speaks."""

    V2007 = "2007"
    V1997 = "1997"

    @property
    def di_length(self) -> int:
        """Bytes of a data identifier (4 for 2007, 2 for 1997)."""
        return 4 if self is Version.V2007 else 2

    def di_hex(self, di: int) -> str:
        """The identifier as written in the standard (``00010000``, ``9010``)."""
        return f"{di:0{self.di_length * 2}X}"


class Function(StrEnum):
    """What a frame asks for, independent of the version's numeric code."""

    SECURITY = "security_authentication"  # 2007 grid extension 03H (ESAM)
    BROADCAST_TIME = "broadcast_time_sync"
    READ = "read_data"
    READ_FOLLOW_UP = "read_follow_up"
    REREAD = "reread"  # 1997 only
    READ_ADDRESS = "read_address"
    WRITE = "write_data"
    WRITE_ADDRESS = "write_address"
    FREEZE = "freeze"
    CHANGE_BAUD = "change_baud"
    CHANGE_PASSWORD = "change_password"
    CLEAR_DEMAND = "clear_demand"
    CLEAR_METER = "clear_meter"
    CLEAR_EVENTS = "clear_events"
    REMOTE_CONTROL = "remote_control"  # 2007 grid extension 1CH
    UNKNOWN = "unknown"


FUNCTIONS: dict[Version, dict[int, Function]] = {
    Version.V2007: {
        0x03: Function.SECURITY,
        0x08: Function.BROADCAST_TIME,
        0x11: Function.READ,
        0x12: Function.READ_FOLLOW_UP,
        0x13: Function.READ_ADDRESS,
        0x14: Function.WRITE,
        0x15: Function.WRITE_ADDRESS,
        0x16: Function.FREEZE,
        0x17: Function.CHANGE_BAUD,
        0x18: Function.CHANGE_PASSWORD,
        0x19: Function.CLEAR_DEMAND,
        0x1A: Function.CLEAR_METER,
        0x1B: Function.CLEAR_EVENTS,
        0x1C: Function.REMOTE_CONTROL,
    },
    Version.V1997: {
        0x01: Function.READ,
        0x02: Function.READ_FOLLOW_UP,
        0x03: Function.REREAD,
        0x04: Function.WRITE,
        0x08: Function.BROADCAST_TIME,
        0x0A: Function.WRITE_ADDRESS,
        0x0C: Function.CHANGE_BAUD,
        0x0F: Function.CHANGE_PASSWORD,
        0x10: Function.CLEAR_DEMAND,
    },
}
CODES: dict[Version, dict[Function, int]] = {
    v: {f: c for c, f in table.items()} for v, table in FUNCTIONS.items()
}

# Abnormal reply error byte, bit → reason.  2007 is confirmed by several sources [V].
# 1997 [?]: the sources disagree; we follow the most quoted reading (b0 illegal data,
# b1 identifier error, b2 password error, b4–b6 as 2007) and name the other bits "bitN".
ERROR_BITS: dict[Version, tuple[str, ...]] = {
    Version.V2007: (
        "other_error",
        "no_requested_data",
        "password_error_or_unauthorised",
        "baud_rate_cannot_change",
        "annual_time_zones_exceeded",
        "daily_periods_exceeded",
        "tariffs_exceeded",
        "bit7",
    ),
    Version.V1997: (
        "illegal_data",
        "data_identifier_error",
        "password_error",
        "bit3",
        "annual_time_zones_exceeded",
        "daily_periods_exceeded",
        "tariffs_exceeded",
        "bit7",
    ),
}


def error_reasons(error: int, version: Version = Version.V2007) -> tuple[str, ...]:
    """Named reasons of an abnormal reply's error byte, one per set bit, low bit first."""
    names = ERROR_BITS[version]
    return tuple(names[bit] for bit in range(8) if error >> bit & 1)


def error_byte(reasons: tuple[str, ...], version: Version = Version.V2007) -> int:
    """The error byte that carries ``reasons`` (inverse of ``error_reasons``)."""
    names = ERROR_BITS[version]
    return sum(1 << names.index(r) for r in reasons)


@dataclass(frozen=True, slots=True)
class Control:
    """A decoded control byte."""

    code: int
    from_meter: bool
    abnormal: bool
    follow_up: bool
    function: Function
    function_code: int

    @property
    def direction(self) -> str:
        """``"reply"`` (meter → master) or ``"request"`` (master → meter)."""
        return "reply" if self.from_meter else "request"


def decode_control(code: int, version: Version = Version.V2007) -> Control:
    """Split a control byte into direction, abnormal, follow-up and function."""
    if not 0 <= code <= 0xFF:
        raise Dlt645Error(f"control code {code} is not a byte")
    fc = code & FUNCTION_MASK
    return Control(
        code=code,
        from_meter=bool(code & DIRECTION_BIT),
        abnormal=bool(code & ABNORMAL_BIT),
        follow_up=bool(code & FOLLOW_UP_BIT),
        function=FUNCTIONS[version].get(fc, Function.UNKNOWN),
        function_code=fc,
    )


_ONLY_1997 = {0x01, 0x02, 0x04, 0x0A, 0x0C, 0x0F, 0x10}


def guess_version(control: int, data_length: int) -> Version:
    """Best guess of the version of a captured frame (for the field tool, not the bus).

    Function codes 11H–1CH exist only in 2007 and 01H/02H/04H/0AH/0CH/0FH/10H only in 1997;
    for the shared codes (03H, 08H) a 2-byte identifier in a read points at 1997.
    """
    fc = control & FUNCTION_MASK
    if fc in _ONLY_1997:
        return Version.V1997
    if fc == 0x03 and data_length in (0, 2):
        return Version.V1997
    return Version.V2007
