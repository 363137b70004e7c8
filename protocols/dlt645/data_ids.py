"""Data identifiers (DI) as data: what each identifier means and how its value is laid out.

2007 identifiers are 4 bytes ``DI3 DI2 DI1 DI0`` (sent DI0 first), 1997 ones 2 bytes.  Rows
whose DI0 is a parameter (the n-th previous settlement period, the n-th last daily freeze, the
n-th last event record) are *pattern rows*: one row with ``di0_range``; ``data_id`` builds the
concrete identifier on demand.  The rows themselves are in ``data_table.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

from protocols.dlt645.control import Version
from protocols.dlt645.errors import Dlt645EncodeError, Dlt645Error, Dlt645ValueError
from protocols.dlt645.layouts import Layout
from protocols.model import DEFAULT_METER_ZONE


class UnknownDataId(Dlt645Error):
    """An identifier that is not in the table."""


@dataclass(frozen=True, slots=True)
class Member:
    """One member of a block identifier."""

    key: str  # canonical quantity name where one exists
    name: str
    quantity: str | None
    unit: str
    fmt: str


@dataclass(frozen=True, slots=True)
class DataId:
    """One data identifier: meaning, canonical quantity, unit, layout and block members."""

    di: int
    version: Version
    name: str
    key: str  # the key of its value in ``ReadReply.values`` (the quantity where canonical)
    quantity: str | None
    unit: str
    layout: Layout
    members: tuple[Member, ...] = ()
    period: str = "current"  # current | settlement | daily_frozen | record | load_profile
    index: int = 0  # which settlement period / freeze / record back (1 = the last)
    di0_range: tuple[int, int] | None = None  # pattern rows: DI0 may be lo..hi
    certainty: str = "V"  # V several sources, 1 one source, ? sources conflict

    @property
    def hex(self) -> str:
        """The identifier as written in the standard."""
        return self.version.di_hex(self.di)

    @property
    def length(self) -> int:
        """Data bytes of the value (the minimum for variable blocks)."""
        return self.layout.length

    @property
    def is_block(self) -> bool:
        """Whether the value is a block of members (decodes to a dict)."""
        return bool(self.members)

    def valid_length(self, n: int) -> bool:
        """Whether ``n`` data bytes can hold this identifier's value."""
        return self.layout.valid_length(n)


_PERIOD_NAMES = {
    "settlement": "{name}, settlement period -{n}",
    "daily_frozen": "{name}, daily freeze -{n}",
    "record": "{name}, record -{n}",
}


def specialize(row: DataId, di0: int) -> DataId:
    """The concrete identifier of a pattern row for this DI0."""
    if di0 == 0:
        return replace(row, di=row.di & ~0xFF, period="current", index=0)
    period = "settlement" if row.period == "current" else row.period
    name = _PERIOD_NAMES[period].format(name=row.name, n=di0)
    return replace(row, di=(row.di & ~0xFF) | di0, name=name, period=period, index=di0)


def _index(rows: list[DataId]) -> tuple[dict[int, DataId], dict[int, DataId]]:
    exact: dict[int, DataId] = {}
    patterns: dict[int, DataId] = {}
    for row in rows:
        if row.di0_range:
            patterns[row.di & ~0xFF] = row
            exact[row.di] = specialize(row, row.di & 0xFF)
        else:
            exact[row.di] = row
    return exact, patterns


def _build() -> tuple[dict[Version, dict[int, DataId]], dict[Version, dict[int, DataId]]]:
    from protocols.dlt645.data_table import ROWS_1997, ROWS_2007

    e7, p7 = _index(ROWS_2007)
    e9, p9 = _index(ROWS_1997)
    return {Version.V2007: e7, Version.V1997: e9}, {Version.V2007: p7, Version.V1997: p9}


DATA_IDS, PATTERNS = _build()
"""``DATA_IDS[version][di]``: the concrete rows; ``PATTERNS[version][di & ~0xFF]``: DI0 rows."""


@lru_cache(maxsize=4096)
def _from_pattern(di: int, version: Version) -> DataId | None:
    row = PATTERNS[version].get(di & ~0xFF)
    if row is None or row.di0_range is None:
        return None
    lo, hi = row.di0_range
    return specialize(row, di & 0xFF) if lo <= di & 0xFF <= hi else None


_EXACT_2007 = DATA_IDS[Version.V2007]
_EXACT_1997 = DATA_IDS[Version.V1997]


def find_data_id(di: int, version: Version = Version.V2007) -> DataId | None:
    """The identifier ``di`` or ``None`` if it is not in the table."""
    row = (_EXACT_2007 if version is Version.V2007 else _EXACT_1997).get(di)
    return row if row is not None else _from_pattern(di, version)


def data_id(di: int, version: Version = Version.V2007) -> DataId:
    """The identifier ``di``; ``UnknownDataId`` if it is not in the table."""
    row = (_EXACT_2007 if version is Version.V2007 else _EXACT_1997).get(di)
    if row is None:
        row = _from_pattern(di, version)
        if row is None:
            raise UnknownDataId(f"data identifier {version.di_hex(di)} is not known")
    return row


def parse_di(text: str | int, version: Version = Version.V2007) -> int:
    """``"00010000"``, ``"0x9010"`` or an int → identifier (``ValueError`` if malformed)."""
    if isinstance(text, int):
        di = text
    else:
        clean = text.strip().replace(" ", "").replace("_", "")
        clean = clean[2:] if clean.lower().startswith("0x") else clean
        if len(clean) != 2 * version.di_length:
            raise ValueError(f"data identifier {text!r} is not {2 * version.di_length} hex digits")
        di = int(clean, 16)
    if not 0 <= di < 1 << (8 * version.di_length):
        raise ValueError(f"data identifier {di:X} does not fit {version.di_length} bytes")
    return di


def decode_value(
    di: int, data: bytes, version: Version = Version.V2007, zone: str = DEFAULT_METER_ZONE
) -> Any:
    """Typed value of identifier ``di`` (a dict member → value for blocks)."""
    row = data_id(di, version)
    if not row.valid_length(len(data)):
        raise Dlt645ValueError(f"{row.hex} ({row.name}) takes {row.length} bytes, got {len(data)}")
    return row.layout.decode(data, zone)


def encode_value(di: int, value: Any, version: Version = Version.V2007) -> bytes:
    """Data bytes (offset not yet added) of ``value`` for identifier ``di``."""
    row = find_data_id(di, version)
    if row is None:
        raise Dlt645EncodeError(f"data identifier {version.di_hex(di)} is not known")
    return row.layout.encode(value)


def decode_values(
    di: int, data: bytes, version: Version = Version.V2007, zone: str = DEFAULT_METER_ZONE
) -> dict[str, Any]:
    """Values keyed by canonical quantity (or member name): what ``ReadReply.values`` holds."""
    return row_values(data_id(di, version), data, zone)


def row_values(row: DataId, data: bytes, zone: str = DEFAULT_METER_ZONE) -> dict[str, Any]:
    """``decode_values`` for a row already looked up."""
    layout = row.layout
    if len(data) != layout.length and not (layout.variable and row.valid_length(len(data))):
        raise Dlt645ValueError(f"{row.hex} ({row.name}) takes {row.length} bytes, got {len(data)}")
    value = layout.decode(data, zone)
    return value if row.members else {row.key: value}


def encode_values(di: int, values: dict[str, Any], version: Version = Version.V2007) -> bytes:
    """Inverse of ``decode_values``."""
    row = find_data_id(di, version)
    if row is None:
        raise Dlt645EncodeError(f"data identifier {version.di_hex(di)} is not known")
    if row.members:
        return row.layout.encode(values)
    if row.key not in values:
        raise Dlt645EncodeError(f"values for {row.hex} lack {row.key!r}")
    return row.layout.encode(values[row.key])
