"""Value layouts of data identifiers: BCD numbers, digit strings, times, status words, records.

Every layout reads the data field (offset already removed, least significant byte first) and
writes it back byte for byte: ``encode(decode(raw)) == raw`` for every valid ``raw``.
Numbers are Decimal (energy, money, measurements) or int (counters); times are
``MeterTime`` (meter-local wall time with its zone; all-zero times decode to ``None``).
Signed BCD: bit 7 of the most significant byte (the last on the wire) is the sign.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any

from protocols.dlt645.errors import Dlt645EncodeError, Dlt645ValueError
from protocols.model import DEFAULT_METER_ZONE, MeterTime


class Layout(ABC):
    """How one value is laid out in the data field."""

    length: int  # bytes; for variable layouts the minimum
    variable: bool = False
    fmt: str = ""

    @abstractmethod
    def decode(self, raw: bytes, zone: str = DEFAULT_METER_ZONE) -> Any:
        """Typed value of ``raw`` (exactly ``length`` bytes unless variable)."""

    @abstractmethod
    def encode(self, value: Any) -> bytes:
        """The data bytes of ``value``; ``Dlt645EncodeError`` if it does not fit."""

    def valid_length(self, n: int) -> bool:
        """Whether ``n`` data bytes can hold a value of this layout."""
        return n == self.length


def _digits(raw: bytes) -> str:
    text = raw[::-1].hex()
    if not text.isdigit():
        raise Dlt645ValueError(f"{raw.hex(' ')} is not BCD")
    return text


class Bcd(Layout):
    """``XXXXXX.XX``: ``digits`` BCD digits, ``decimals`` of them after the point."""

    def __init__(
        self, digits: int, decimals: int = 0, signed: bool = False, integer: bool = False
    ) -> None:
        self.digits, self.decimals, self.signed, self.integer = digits, decimals, signed, integer
        self.length = digits // 2
        self.fmt = (
            ("-" if signed else "")
            + "X" * (digits - decimals)
            + ("." + "X" * decimals if decimals else "")
        )
        self._limit = (8 if signed else 10) * 10 ** (digits - 1)
        self._quantum = Decimal(1).scaleb(-decimals)

    def decode(self, raw: bytes, zone: str = DEFAULT_METER_ZONE) -> Decimal | int:
        negative = False
        if self.signed and raw[-1] & 0x80:
            negative = True
            raw = raw[:-1] + bytes((raw[-1] & 0x7F,))
        text = _digits(raw)
        if self.integer:
            return -int(text) if negative else int(text)
        d = self.decimals
        number = Decimal(f"{text[:-d]}.{text[-d:]}" if d else text)
        return -number if negative else number

    def encode(self, value: Any) -> bytes:
        try:
            exact = Decimal(value) if not isinstance(value, float) else Decimal(str(value))
            scaled = exact.scaleb(self.decimals)
            n = int(scaled)
        except (InvalidOperation, ValueError, TypeError, OverflowError):
            raise Dlt645EncodeError(f"{value!r} is not a number") from None
        if scaled != n:
            raise Dlt645EncodeError(f"{value} has more than {self.decimals} decimals")
        negative = n < 0 or (n == 0 and exact.is_signed())
        if negative and not self.signed:
            raise Dlt645EncodeError(f"{value} is negative but the layout {self.fmt} is unsigned")
        n = abs(n)
        if n >= self._limit:
            raise Dlt645EncodeError(f"{value} does not fit {self.fmt}")
        raw = bytes.fromhex(f"{n:0{self.digits}d}")[::-1]
        return raw[:-1] + bytes((raw[-1] | 0x80,)) if negative else raw


class Digits(Layout):
    """A string of ``2 × length`` decimal digits (addresses, meter numbers)."""

    def __init__(self, length: int) -> None:
        self.length = length
        self.fmt = "N" * (2 * length)

    def decode(self, raw: bytes, zone: str = DEFAULT_METER_ZONE) -> str:
        return _digits(raw)

    def encode(self, value: Any) -> bytes:
        text = str(value)
        if len(text) != 2 * self.length or not text.isdigit():
            raise Dlt645EncodeError(f"{value!r} is not {2 * self.length} digits")
        return bytes.fromhex(text)[::-1]


class Hex(Layout):
    """Opaque bytes shown as hex (most significant first)."""

    def __init__(self, length: int) -> None:
        self.length = length
        self.fmt = "H" * (2 * length)

    def decode(self, raw: bytes, zone: str = DEFAULT_METER_ZONE) -> str:
        return raw[::-1].hex().upper()

    def encode(self, value: Any) -> bytes:
        try:
            raw = bytes.fromhex(str(value))[::-1]
        except ValueError:
            raise Dlt645EncodeError(f"{value!r} is not hex") from None
        if len(raw) != self.length:
            raise Dlt645EncodeError(f"{value!r} is not {self.length} bytes")
        return raw


_FIELDS = {"YY": 0, "MM": 1, "DD": 2, "hh": 3, "mm": 4, "ss": 5}


class Stamp(Layout):
    """A meter timestamp such as ``YYMMDDhhmmss`` or ``YYMMDDhhmm`` → ``MeterTime | None``."""

    def __init__(self, fmt: str) -> None:
        self.fmt = fmt
        self.parts = [fmt[i : i + 2] for i in range(0, len(fmt), 2)]
        self.length = len(self.parts)

    def decode(self, raw: bytes, zone: str = DEFAULT_METER_ZONE) -> MeterTime | None:
        text = _digits(raw)
        f = [0, 1, 1, 0, 0, 0]
        for i, part in enumerate(self.parts):
            f[_FIELDS[part]] = int(text[2 * i : 2 * i + 2])
        if not any(text.strip("0")):
            return None
        return MeterTime.from_fields(f[0], f[1], f[2], f[3], f[4], f[5], zone=zone)

    def encode(self, value: Any) -> bytes:
        if value is None:
            return bytes(self.length)
        local = value.local if isinstance(value, MeterTime) else value
        if not isinstance(local, datetime):
            raise Dlt645EncodeError(f"{value!r} is not a MeterTime or datetime")
        if not 2000 <= local.year <= 2099:
            raise Dlt645EncodeError(f"year {local.year} outside 2000..2099")
        f = (local.year % 100, local.month, local.day, local.hour, local.minute, local.second)
        text = "".join(f"{f[_FIELDS[p]]:02d}" for p in self.parts)
        return bytes.fromhex(text)[::-1]


class DateWeek(Layout):
    """``YYMMDDWW`` (wire ``WW DD MM YY``, weekday 0 = Sunday) → ``datetime.date``.

    The weekday is recomputed on encode and not checked on decode (meters get it wrong).
    """

    length = 4
    fmt = "YYMMDDWW"

    def decode(self, raw: bytes, zone: str = DEFAULT_METER_ZONE) -> date | None:
        text = _digits(raw)
        try:
            return date(2000 + int(text[0:2]), int(text[2:4]), int(text[4:6]))
        except ValueError:
            return None

    def encode(self, value: Any) -> bytes:
        if isinstance(value, MeterTime):
            value = value.local
        if not isinstance(value, date) or not 2000 <= value.year <= 2099:
            raise Dlt645EncodeError(f"{value!r} is not a date in 2000..2099")
        week = value.isoweekday() % 7
        return bytes.fromhex(f"{value.year % 100:02d}{value.month:02d}{value.day:02d}{week:02d}")[
            ::-1
        ]


class TimeOfDay(Layout):
    """``hhmmss`` (wire ``ss mm hh``) → ``datetime.time``."""

    length = 3
    fmt = "hhmmss"

    def decode(self, raw: bytes, zone: str = DEFAULT_METER_ZONE) -> time:
        text = _digits(raw)
        try:
            return time(int(text[0:2]), int(text[2:4]), int(text[4:6]))
        except ValueError:
            raise Dlt645ValueError(f"{text} is not a time of day") from None

    def encode(self, value: Any) -> bytes:
        if isinstance(value, datetime):
            value = value.time()
        if not isinstance(value, time):
            raise Dlt645EncodeError(f"{value!r} is not a time of day")
        return bytes.fromhex(f"{value.hour:02d}{value.minute:02d}{value.second:02d}")[::-1]


class DateWeekTime(Layout):
    """``YYMMDDWWhhmmss`` (wire ``ss mm hh WW DD MM YY``) → ``MeterTime`` (all zero: ``None``).

    Date and time in one read, so a read across midnight cannot pair one day's date with the
    next day's time.  The weekday is recomputed on encode and not checked on decode.
    """

    length = 7
    fmt = "YYMMDDWWhhmmss"

    def decode(self, raw: bytes, zone: str = DEFAULT_METER_ZONE) -> MeterTime | None:
        text = _digits(raw)
        if not text.strip("0"):
            return None
        f = [int(text[i : i + 2]) for i in range(0, 14, 2)]
        return MeterTime.from_fields(f[0], f[1], f[2], f[4], f[5], f[6], zone=zone)

    def encode(self, value: Any) -> bytes:
        if value is None:
            return bytes(self.length)
        local = value.local if isinstance(value, MeterTime) else value
        if not isinstance(local, datetime) or not 2000 <= local.year <= 2099:
            raise Dlt645EncodeError(f"{value!r} is not a datetime in 2000..2099")
        week = local.isoweekday() % 7
        text = (
            f"{local.year % 100:02d}{local.month:02d}{local.day:02d}{week:02d}"
            f"{local.hour:02d}{local.minute:02d}{local.second:02d}"
        )
        return bytes.fromhex(text)[::-1]


@dataclass(frozen=True, slots=True)
class StatusWord:
    """A status word: its number, raw value and the names of the bits that are set."""

    number: int
    raw: int
    flags: tuple[str, ...]

    def __contains__(self, flag: object) -> bool:
        return flag in self.flags


class Bits(Layout):
    """A 2-byte status word (binary, least significant byte first) with named bits."""

    length = 2
    fmt = "binary"

    def __init__(self, number: int, names: Mapping[int, str]) -> None:
        self.number = number
        self.names = tuple(names.get(bit, f"bit{bit}") for bit in range(16))

    def decode(self, raw: bytes, zone: str = DEFAULT_METER_ZONE) -> StatusWord:
        word = raw[0] | raw[1] << 8
        flags = tuple(self.names[b] for b in range(16) if word >> b & 1)
        return StatusWord(self.number, word, flags)

    def encode(self, value: Any) -> bytes:
        if isinstance(value, StatusWord):
            word = value.raw
        elif isinstance(value, int):
            word = value
        else:
            try:
                word = sum(1 << self.names.index(name) for name in value)
            except (ValueError, TypeError):
                raise Dlt645EncodeError(f"{value!r} is not a status word") from None
        if not 0 <= word <= 0xFFFF:
            raise Dlt645EncodeError(f"status word {word} is not 16 bits")
        return bytes((word & 0xFF, word >> 8))


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One event record: start and end (meter time) and the values stored with it."""

    start: MeterTime | None
    end: MeterTime | None
    values: Mapping[str, Any] = field(default_factory=dict)


class Record(Layout):
    """Start ``YYMMDDhhmmss`` + end ``YYMMDDhhmmss`` + named values → ``EventRecord``."""

    fmt = "record"

    def __init__(self, fields: tuple[tuple[str, Layout], ...] = ()) -> None:
        self.stamp = Stamp("YYMMDDhhmmss")
        self.fields = fields
        self.length = 12 + sum(layout.length for _, layout in fields)

    def decode(self, raw: bytes, zone: str = DEFAULT_METER_ZONE) -> EventRecord:
        values: dict[str, Any] = {}
        pos = 12
        for name, layout in self.fields:
            values[name] = layout.decode(raw[pos : pos + layout.length], zone)
            pos += layout.length
        return EventRecord(
            self.stamp.decode(raw[0:6], zone), self.stamp.decode(raw[6:12], zone), values
        )

    def encode(self, value: Any) -> bytes:
        if not isinstance(value, EventRecord):
            raise Dlt645EncodeError(f"{value!r} is not an EventRecord")
        out = self.stamp.encode(value.start) + self.stamp.encode(value.end)
        try:
            return out + b"".join(layout.encode(value.values[n]) for n, layout in self.fields)
        except KeyError as exc:
            raise Dlt645EncodeError(f"event record lacks {exc}") from None


class Group(Layout):
    """Several values one after another (a block) → ``dict`` key → value."""

    fmt = "block"

    def __init__(self, fields: tuple[tuple[str, Layout], ...], repeat_tail: str = "") -> None:
        self.fields = fields
        self.length = sum(layout.length for _, layout in fields)
        # a tariff block: meters send total + as many tariffs as they keep (k may exceed 4)
        self.repeat_tail = repeat_tail
        self.variable = bool(repeat_tail)

    def decode(self, raw: bytes, zone: str = DEFAULT_METER_ZONE) -> dict[str, Any]:
        out: dict[str, Any] = {}
        pos = 0
        for name, layout in self.fields:
            n = layout.length
            if pos + n > len(raw) and self.variable and pos:
                break  # fewer tariffs than the nominal four
            out[name] = layout.decode(raw[pos : pos + n], zone)
            pos += n
        if self.variable:
            layout = self.fields[-1][1]
            n, k = layout.length, len(self.fields)
            while pos + n <= len(raw):
                out[f"{self.repeat_tail}{k}"] = layout.decode(raw[pos : pos + n], zone)
                pos, k = pos + n, k + 1
        return out

    def encode(self, value: Any) -> bytes:
        if not isinstance(value, Mapping):
            raise Dlt645EncodeError(f"{value!r} is not a mapping of block members")
        parts: list[bytes] = []
        for name, layout in self.fields:
            if name not in value:
                if self.variable and parts:
                    break
                raise Dlt645EncodeError(f"block value lacks {name!r}")
            parts.append(layout.encode(value[name]))
        if self.variable:
            layout, k = self.fields[-1][1], len(self.fields)
            while f"{self.repeat_tail}{k}" in value:
                parts.append(layout.encode(value[f"{self.repeat_tail}{k}"]))
                k += 1
        return b"".join(parts)

    def valid_length(self, n: int) -> bool:
        """Whether ``n`` data bytes can be this block."""
        if not self.variable:
            return n == self.length
        size = self.fields[-1][1].length
        return n >= self.fields[0][1].length and n % size == 0
