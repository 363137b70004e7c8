"""Load profile records (DL/T 645-2007 table A.7, DI3 = 06): identifiers, layout, request.

The meter stores a record of each category every interval (parameter 04000A02…07, commonly
15 minutes).  Identifiers ``06 0k 00 0n``: k = category 1–6 (0 = every category at once, in the
framed A0H A0H … E5H format, which Taiqu does not read), n = which records::

    DI0 00  earliest record(s)        request data: DI + NN (count)
    DI0 01  records from a given time request data: DI + NN + mm hh DD MM YY   [?]
    DI0 02  most recent record        request data: DI + NN (01)

(request layouts as one public C implementation gives them, length 1 / 6 / 1 [1]).  The reply
carries the records one after another, each ``YYMMDDhhmm`` + the category's values; a reply
longer than one frame (200 value bytes) goes on in follow-up frames (12H).

=========  ==============================================================  =====
category   values (each record)                                            bytes
=========  ==============================================================  =====
1          voltage A B C (XXX.X), current A B C (±XXX.XXX), frequency     17
2          active power total A B C, reactive power total A B C (±XX.XXXX) 24
3          power factor total A B C (±X.XXX)                              8
4          forward active, reverse active, combined reactive 1, 2 totals   16
5          quadrant I–IV reactive totals (XXXXXX.XX)                       16
6          current active and reactive demand (XX.XXXX)                    6
=========  ==============================================================  =====
Record sizes 5 + (17, 24, 8, 16, 16, 6): [1] (vendor protocol documents quoting the standard's
appendix); marked [?] in docs/dlt645.md until checked against the standard's text.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from protocols.dlt645.errors import Dlt645EncodeError, Dlt645ValueError
from protocols.dlt645.layouts import Bcd, Layout, Stamp
from protocols.dlt645.messages import ReadData
from protocols.model import DEFAULT_METER_ZONE, MeterTime

LOAD_PROFILE = 0x06000000
EARLIEST, GIVEN_TIME, MOST_RECENT = 0x00, 0x01, 0x02

_V, _I, _F = Bcd(4, 1), Bcd(6, 3, signed=True), Bcd(4, 2)
_P, _PF, _E, _EC, _D = (
    Bcd(6, 4, signed=True),
    Bcd(4, 3, signed=True),
    Bcd(8, 2),
    Bcd(8, 2, True),
    Bcd(6, 4),
)

CATEGORIES: dict[int, tuple[str, tuple[tuple[str, Layout], ...]]] = {
    1: ("voltage, current and frequency", (
        ("voltage.a", _V), ("voltage.b", _V), ("voltage.c", _V),
        ("current.a", _I), ("current.b", _I), ("current.c", _I), ("frequency", _F))),
    2: ("active and reactive power", (
        ("power.active.total", _P), ("power.active.a", _P), ("power.active.b", _P),
        ("power.active.c", _P), ("power.reactive.total", _P), ("power.reactive.a", _P),
        ("power.reactive.b", _P), ("power.reactive.c", _P))),
    3: ("power factor", (
        ("power_factor.total", _PF), ("power_factor.a", _PF), ("power_factor.b", _PF),
        ("power_factor.c", _PF))),
    4: ("active and reactive energy totals", (
        ("energy.active.import.total", _E), ("energy.active.export.total", _E),
        ("energy.reactive.combined1.total", _EC), ("energy.reactive.combined2.total", _EC))),
    5: ("four-quadrant reactive energy totals", (
        ("energy.reactive.q1.total", _E), ("energy.reactive.q2.total", _E),
        ("energy.reactive.q3.total", _E), ("energy.reactive.q4.total", _E))),
    6: ("current demand", (("demand.active", _D), ("demand.reactive", _D))),
}  # fmt: skip
ENERGY = 4  # the category a gateway reads for interval energy


@dataclass(frozen=True, slots=True)
class ProfileRecord:
    """One stored load record: its time (meter-local) and its values."""

    time: MeterTime | None
    values: Mapping[str, Any] = field(default_factory=dict)


class ProfileRecords(Layout):
    """Records one after another (``YYMMDDhhmm`` + fields) → ``tuple[ProfileRecord, ...]``."""

    fmt = "records"
    variable = True

    def __init__(self, fields: tuple[tuple[str, Layout], ...]) -> None:
        self.stamp = Stamp("YYMMDDhhmm")
        self.fields = fields
        self.record = 5 + sum(layout.length for _, layout in fields)
        self.length = self.record

    def valid_length(self, n: int) -> bool:
        """Whether ``n`` bytes are a whole number (≥ 1) of records."""
        return n >= self.record and n % self.record == 0

    def decode(self, raw: bytes, zone: str = DEFAULT_METER_ZONE) -> tuple[ProfileRecord, ...]:
        if not self.valid_length(len(raw)):
            raise Dlt645ValueError(f"{len(raw)} bytes are not whole {self.record}-byte records")
        out = []
        for start in range(0, len(raw), self.record):
            pos = start + 5
            values: dict[str, Any] = {}
            for name, layout in self.fields:
                values[name] = layout.decode(raw[pos : pos + layout.length], zone)
                pos += layout.length
            out.append(ProfileRecord(self.stamp.decode(raw[start : start + 5], zone), values))
        return tuple(out)

    def encode(self, value: Any) -> bytes:
        parts = []
        for record in value:
            if not isinstance(record, ProfileRecord):
                raise Dlt645EncodeError(f"{record!r} is not a ProfileRecord")
            parts.append(self.stamp.encode(record.time))
            try:
                parts += [layout.encode(record.values[n]) for n, layout in self.fields]
            except KeyError as exc:
                raise Dlt645EncodeError(f"load record lacks {exc}") from None
        return b"".join(parts)


def profile_di(category: int, which: int = GIVEN_TIME) -> int:
    """The identifier of a category (1–6) and a selector (EARLIEST, GIVEN_TIME, MOST_RECENT)."""
    if category not in CATEGORIES or which not in (EARLIEST, GIVEN_TIME, MOST_RECENT):
        raise Dlt645EncodeError(f"no load profile identifier for category {category}/{which}")
    return LOAD_PROFILE | category << 16 | which


def _bcd(n: int) -> int:
    if not 1 <= n <= 99:
        raise Dlt645EncodeError(f"record count {n} is not 1…99")
    return int(f"{n:02d}", 16)


def profile_request(
    address: str, category: int = ENERGY, count: int = 1, start: datetime | None = None
) -> ReadData:
    """Read ``count`` records of ``category`` from ``start`` (naive meter-local), or the latest."""
    if start is None:
        return ReadData(address, profile_di(category, MOST_RECENT), params=bytes((_bcd(count),)))
    if start.tzinfo is not None:
        raise Dlt645EncodeError("load profile start takes naive meter-local time")
    params = bytes((_bcd(count),)) + Stamp("YYMMDDhhmm").encode(start)
    return ReadData(address, profile_di(category, GIVEN_TIME), params=params)


def parse_params(
    di: int, params: bytes, zone: str = DEFAULT_METER_ZONE
) -> tuple[int, MeterTime | None]:
    """(count, start) of a load profile request's extra data (``Dlt645ValueError`` if malformed)."""
    if not params:
        raise Dlt645ValueError("a load profile read needs a record count")
    text = f"{params[0]:02x}"
    if not text.isdigit() or int(text) == 0:
        raise Dlt645ValueError(f"record count {params[0]:02X}H is not BCD 01…99")
    count = int(text)
    if di & 0xFF != GIVEN_TIME:
        return count, None
    if len(params) != 6:
        raise Dlt645ValueError("a given-time load profile read needs NN + mm hh DD MM YY")
    return count, Stamp("YYMMDDhhmm").decode(params[1:6], zone)


__all__ = [
    "CATEGORIES",
    "EARLIEST",
    "ENERGY",
    "GIVEN_TIME",
    "LOAD_PROFILE",
    "MOST_RECENT",
    "ProfileRecord",
    "ProfileRecords",
    "parse_params",
    "profile_di",
    "profile_request",
]
