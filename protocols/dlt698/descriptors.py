"""The value types of DL/T 698.45 A-XDR besides plain numbers and strings (clause 7.3.2).

Frozen dataclasses only; their wire forms live in ``axdr``.  Date and time fields keep the raw
numbers (FFH / FFFFH mean "not given"), so a meter's odd timestamp round-trips unchanged;
``to_datetime`` gives a ``datetime`` or ``None``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum
from typing import TYPE_CHECKING, Any

from protocols.dlt698.errors import Dlt698EncodeError

if TYPE_CHECKING:
    from protocols.dlt698.axdr import Data


class DataType(IntEnum):
    """Data tags (DL/T 698.45-2017 table "Data 数据类型")."""

    NULL = 0
    ARRAY = 1
    STRUCTURE = 2
    BOOL = 3
    BIT_STRING = 4
    DOUBLE_LONG = 5
    DOUBLE_LONG_UNSIGNED = 6
    OCTET_STRING = 9
    VISIBLE_STRING = 10
    UTF8_STRING = 12
    INTEGER = 15
    LONG = 16
    UNSIGNED = 17
    LONG_UNSIGNED = 18
    LONG64 = 20
    LONG64_UNSIGNED = 21
    ENUM = 22
    FLOAT32 = 23
    FLOAT64 = 24
    DATE_TIME = 25
    DATE = 26
    TIME = 27
    DATE_TIME_S = 28
    OI = 80
    OAD = 81
    ROAD = 82
    OMD = 83
    TI = 84
    TSA = 85
    MAC = 86
    RN = 87
    REGION = 88
    SCALER_UNIT = 89
    RSD = 90
    CSD = 91
    MS = 92
    SID = 93
    SID_MAC = 94
    COMDCB = 95
    RCSD = 96


class Dar(IntEnum):
    """Data access result (DAR) — the meter's per-item answer; 0 is success."""

    SUCCESS = 0
    HARDWARE_FAULT = 1
    TEMPORARY_FAILURE = 2
    READ_WRITE_DENIED = 3
    OBJECT_UNDEFINED = 4
    CLASS_MISMATCH = 5
    OBJECT_ABSENT = 6
    TYPE_MISMATCH = 7
    OUT_OF_RANGE = 8
    BLOCK_UNAVAILABLE = 9
    FRAGMENT_CANCELLED = 10
    NOT_FRAGMENTING = 11
    BLOCK_WRITE_CANCELLED = 12
    NO_BLOCK_WRITE = 13
    BLOCK_NUMBER_INVALID = 14
    UNAUTHORISED = 15
    BAUD_FIXED = 16
    SEASONS_EXCEEDED = 17
    PERIODS_EXCEEDED = 18
    TARIFFS_EXCEEDED = 19
    SECURITY_MISMATCH = 20
    DUPLICATE_RECHARGE = 21
    ESAM_FAILED = 22
    SECURITY_FAILED = 23
    CUSTOMER_MISMATCH = 24
    RECHARGE_COUNT_ERROR = 25
    PURCHASE_EXCEEDS_HOARD = 26
    ADDRESS_ERROR = 27
    SYMMETRIC_DECRYPT_ERROR = 28
    ASYMMETRIC_DECRYPT_ERROR = 29
    SIGNATURE_ERROR = 30
    METER_SUSPENDED = 31
    TIME_TAG_INVALID = 32
    REQUEST_TIMEOUT = 33
    ESAM_P1P2_WRONG = 34
    ESAM_LC_WRONG = 35
    COMPARISON_FAILED = 36
    OTHER = 255


def dar_name(code: int) -> str:
    """A readable name for a DAR code (unknown codes too)."""
    try:
        return Dar(code).name.lower()
    except ValueError:
        return f"dar_{code}"


def _check(value: int, low: int, high: int, what: str) -> None:
    if not low <= value <= high:
        raise Dlt698EncodeError(f"{what} {value} is outside {low}..{high}")


@dataclass(frozen=True, slots=True)
class OAD:
    """Object attribute descriptor: OI, attribute 1..31 with feature bits, element index."""

    oi: int
    attribute: int
    index: int = 0
    feature: int = 0

    def __post_init__(self) -> None:
        _check(self.oi, 0, 0xFFFF, "OI")
        _check(self.attribute, 0, 31, "attribute")
        _check(self.index, 0, 255, "element index")
        _check(self.feature, 0, 7, "attribute feature")

    @property
    def wire(self) -> bytes:
        """The four bytes."""
        return bytes(
            (self.oi >> 8, self.oi & 0xFF, (self.feature << 5) | self.attribute, self.index)
        )

    @property
    def hex(self) -> str:
        """``00100200`` style."""
        return self.wire.hex().upper()

    @classmethod
    def parse(cls, text: str) -> OAD:
        """``'00100200'`` (spaces allowed) → ``OAD``; ``ValueError`` if not 8 hex digits."""
        raw = bytes.fromhex(text.replace(" ", ""))
        if len(raw) != 4:
            raise ValueError(f"OAD {text!r} is not 8 hex digits")
        return cls((raw[0] << 8) | raw[1], raw[2] & 0x1F, raw[3], raw[2] >> 5)

    def element(self, index: int) -> OAD:
        """The same attribute, one element."""
        return OAD(self.oi, self.attribute, index, self.feature)

    def __str__(self) -> str:
        return self.hex


@dataclass(frozen=True, slots=True)
class OMD:
    """Object method descriptor: OI, method id, operation mode."""

    oi: int
    method: int
    mode: int = 0

    def __post_init__(self) -> None:
        _check(self.oi, 0, 0xFFFF, "OI")
        _check(self.method, 0, 255, "method")
        _check(self.mode, 0, 255, "operation mode")

    @property
    def wire(self) -> bytes:
        """The four bytes."""
        return bytes((self.oi >> 8, self.oi & 0xFF, self.method, self.mode))

    def __str__(self) -> str:
        return self.wire.hex().upper()


@dataclass(frozen=True, slots=True)
class ROAD:
    """Record OAD: a record object attribute and the columns (associated OADs) asked."""

    oad: OAD
    columns: tuple[OAD, ...] = ()


CSD = OAD | ROAD
"""Column selection descriptor: CHOICE {OAD [0], ROAD [1]}."""


class TIUnit(IntEnum):
    """Units of a time interval."""

    SECOND = 0
    MINUTE = 1
    HOUR = 2
    DAY = 3
    MONTH = 4
    YEAR = 5


@dataclass(frozen=True, slots=True)
class TI:
    """Time interval: unit and count."""

    unit: int
    interval: int

    def __post_init__(self) -> None:
        _check(self.unit, 0, 255, "TI unit")
        _check(self.interval, 0, 0xFFFF, "TI interval")


@dataclass(frozen=True, slots=True)
class DateTimeS:
    """date_time_s: year (2 bytes), month, day, hour, minute, second."""

    year: int
    month: int
    day: int
    hour: int = 0
    minute: int = 0
    second: int = 0

    def __post_init__(self) -> None:
        _check(self.year, 0, 0xFFFF, "year")
        for name in ("month", "day", "hour", "minute", "second"):
            _check(getattr(self, name), 0, 255, name)

    def to_datetime(self) -> datetime | None:
        """The naive local time, or ``None`` for an impossible or "not given" field."""
        try:
            return datetime(self.year, self.month, self.day, self.hour, self.minute, self.second)
        except ValueError:
            return None

    @classmethod
    def of(cls, when: datetime) -> DateTimeS:
        """From a naive (meter-local) datetime; microseconds dropped."""
        return cls(when.year, when.month, when.day, when.hour, when.minute, when.second)


@dataclass(frozen=True, slots=True)
class DateTime:
    """date_time: year, month, day, day of week, hour, minute, second, milliseconds."""

    year: int
    month: int
    day: int
    weekday: int
    hour: int
    minute: int
    second: int
    millisecond: int = 0

    def __post_init__(self) -> None:
        _check(self.year, 0, 0xFFFF, "year")
        _check(self.millisecond, 0, 0xFFFF, "milliseconds")
        for name in ("month", "day", "weekday", "hour", "minute", "second"):
            _check(getattr(self, name), 0, 255, name)

    def to_datetime(self) -> datetime | None:
        """The naive local time, or ``None``."""
        try:
            return datetime(
                self.year,
                self.month,
                self.day,
                self.hour,
                self.minute,
                self.second,
                min(self.millisecond, 999) * 1000,
            )
        except ValueError:
            return None

    @classmethod
    def of(cls, when: datetime) -> DateTime:
        """From a naive datetime (day of week: 0 = Sunday, as the standard counts)."""
        weekday = (when.weekday() + 1) % 7
        return cls(
            when.year,
            when.month,
            when.day,
            weekday,
            when.hour,
            when.minute,
            when.second,
            when.microsecond // 1000,
        )


@dataclass(frozen=True, slots=True)
class Date:
    """date: year, month, day, day of week."""

    year: int
    month: int
    day: int
    weekday: int = 0xFF

    def __post_init__(self) -> None:
        _check(self.year, 0, 0xFFFF, "year")
        for name in ("month", "day", "weekday"):
            _check(getattr(self, name), 0, 255, name)


@dataclass(frozen=True, slots=True)
class Time:
    """time: hour, minute, second."""

    hour: int
    minute: int
    second: int

    def __post_init__(self) -> None:
        for name in ("hour", "minute", "second"):
            _check(getattr(self, name), 0, 255, name)


@dataclass(frozen=True, slots=True)
class BitString:
    """bit-string: the number of bits and the bytes carrying them (first bit = MSB)."""

    bits: int
    value: bytes

    def __post_init__(self) -> None:
        if len(self.value) != (self.bits + 7) // 8:
            raise Dlt698EncodeError(f"{self.bits} bits need {(self.bits + 7) // 8} bytes")

    def bit(self, n: int) -> bool:
        """Bit ``n`` counted from the first (most significant) bit."""
        return bool(self.value[n // 8] & (0x80 >> (n % 8)))


@dataclass(frozen=True, slots=True)
class ScalerUnit:
    """Scaler (power of ten) and unit enum."""

    scaler: int
    unit: int

    def __post_init__(self) -> None:
        _check(self.scaler, -128, 127, "scaler")
        _check(self.unit, 0, 255, "unit")


@dataclass(frozen=True, slots=True)
class Region:
    """Region: unit (0 [a,b), 1 (a,b], 2 [a,b], 3 (a,b)), start, end."""

    unit: int
    start: Data
    end: Data

    def __post_init__(self) -> None:
        _check(self.unit, 0, 255, "region unit")


@dataclass(frozen=True, slots=True)
class SID:
    """Security identifier: id and additional data."""

    ident: int
    extra: bytes = b""

    def __post_init__(self) -> None:
        _check(self.ident, 0, 0xFFFFFFFF, "SID")


@dataclass(frozen=True, slots=True)
class SIDMAC:
    """SID and MAC."""

    sid: SID
    mac: bytes


@dataclass(frozen=True, slots=True)
class COMDCB:
    """Serial settings: baud enum, parity enum, data bits enum, stop bits enum, flow enum."""

    baud: int
    parity: int
    data_bits: int
    stop_bits: int
    flow: int

    def __post_init__(self) -> None:
        for name in ("baud", "parity", "data_bits", "stop_bits", "flow"):
            _check(getattr(self, name), 0, 255, name)


@dataclass(frozen=True, slots=True)
class MS:
    """Meter set: choice 0 none, 1 all, 2 user types, 3 addresses, 4 serials, 5-7 regions."""

    choice: int
    items: tuple[Any, ...] = ()

    def __post_init__(self) -> None:
        _check(self.choice, 0, 7, "MS choice")


ALL_METERS = MS(1)
NO_METER = MS(0)


@dataclass(frozen=True, slots=True)
class Selector1:
    """RSD 1: records whose column ``oad`` equals ``value``."""

    oad: OAD
    value: Data


@dataclass(frozen=True, slots=True)
class Selector2:
    """RSD 2: records whose column ``oad`` is in [start, end) stepping ``interval``."""

    oad: OAD
    start: Data
    end: Data
    interval: Data


@dataclass(frozen=True, slots=True)
class Selector3:
    """RSD 3: several Selector2 ranges."""

    ranges: tuple[Selector2, ...]


@dataclass(frozen=True, slots=True)
class Selector4:
    """RSD 4 (collection start time) / 5 (collection store time) with a meter set."""

    time: DateTimeS
    meters: MS
    number: int = 4


@dataclass(frozen=True, slots=True)
class Selector6:
    """RSD 6/7/8: start and end time, interval and meter set (concentrator task data)."""

    start: DateTimeS
    end: DateTimeS
    interval: TI
    meters: MS
    number: int = 6


@dataclass(frozen=True, slots=True)
class Selector9:
    """RSD 9: the ``last``-th most recent record (1 = the last one)."""

    last: int

    def __post_init__(self) -> None:
        _check(self.last, 0, 255, "Selector9 record number")


@dataclass(frozen=True, slots=True)
class Selector10:
    """RSD 10: the ``last`` most recent records of a meter set."""

    last: int
    meters: MS

    def __post_init__(self) -> None:
        _check(self.last, 0, 255, "Selector10 record count")


RSD = None | Selector1 | Selector2 | Selector3 | Selector4 | Selector6 | Selector9 | Selector10
"""Record selection descriptor (``None`` is selector 0, "no selection").  A TSA is carried as a
``frame.ServerAddress`` (same address flag, address in nameplate order)."""

"""A TSA is carried as a ``frame.ServerAddress`` (same address flag, nameplate order)."""
