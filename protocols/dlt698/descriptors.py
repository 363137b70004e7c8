"""The value types of DL/T 698.45 A-XDR besides plain numbers and strings (clause 7.3.2).

Data tags, DAR codes, object descriptors (OAD, OMD, ROAD, CSD) and the small structures.
Frozen dataclasses only; their wire forms live in ``axdr``.  Time values live in ``datetimes``,
record selectors and meter sets in ``selection``; both are re-exported here for the modules
that import them from this one.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING

from protocols.dlt698 import datetimes, selection
from protocols.dlt698.datetimes import *  # noqa: F403  (re-exported: TI, Date, DateTime, …)
from protocols.dlt698.errors import Dlt698EncodeError, check_range
from protocols.dlt698.selection import *  # noqa: F403  (re-exported: MS, RSD, Selector1, …)

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


@dataclass(frozen=True, slots=True)
class OAD:
    """Object attribute descriptor: OI, attribute 1..31 with feature bits, element index."""

    oi: int
    attribute: int
    index: int = 0
    feature: int = 0

    def __post_init__(self) -> None:
        check_range(self.oi, 0, 0xFFFF, "OI")
        check_range(self.attribute, 0, 31, "attribute")
        check_range(self.index, 0, 255, "element index")
        check_range(self.feature, 0, 7, "attribute feature")

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
        check_range(self.oi, 0, 0xFFFF, "OI")
        check_range(self.method, 0, 255, "method")
        check_range(self.mode, 0, 255, "operation mode")

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
        check_range(self.scaler, -128, 127, "scaler")
        check_range(self.unit, 0, 255, "unit")


@dataclass(frozen=True, slots=True)
class Region:
    """Region: unit (0 [a,b), 1 (a,b], 2 [a,b], 3 (a,b)), start, end."""

    unit: int
    start: Data
    end: Data

    def __post_init__(self) -> None:
        check_range(self.unit, 0, 255, "region unit")


@dataclass(frozen=True, slots=True)
class SID:
    """Security identifier: id and additional data."""

    ident: int
    extra: bytes = b""

    def __post_init__(self) -> None:
        check_range(self.ident, 0, 0xFFFFFFFF, "SID")


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
            check_range(getattr(self, name), 0, 255, name)


__all__ = [
    "COMDCB",
    "CSD",
    "OAD",
    "OMD",
    "ROAD",
    "SID",
    "SIDMAC",
    "BitString",
    "Dar",
    "DataType",
    "Region",
    "ScalerUnit",
    "dar_name",
]
__all__ += datetimes.__all__
__all__ += selection.__all__
