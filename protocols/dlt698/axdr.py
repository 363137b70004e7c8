"""A-XDR encoding of ``Data`` and the composite types (DL/T 698.45-2017 clause 7.3, A-XDR).

Every value on the wire is a type tag followed by its content (``scalars`` holds the types that
nest no Data); composite descriptors (ROAD, CSD, MS, Region, RSD) also appear untagged inside
APDUs, so each has an untagged ``enc_*``/``dec_*`` pair here.  Decoders take ``(buf, pos)`` and
return ``(value, new_pos)``; ``decode_data`` and the APDU decoder turn the ``IndexError``/
``struct.error`` of a truncated buffer into ``Dlt698Error``.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from protocols.dlt698.descriptors import CSD, OAD, ROAD, DataType, Region
from protocols.dlt698.errors import Dlt698EncodeError, Dlt698Error
from protocols.dlt698.scalars import (
    SCALAR_DEC,
    SCALAR_ENC,
    Decoder,
    Encoder,
    _typed,
    dec_dts,
    dec_len,
    dec_oad,
    dec_ti,
    dec_tsa,
    enc_dts,
    enc_len,
    enc_ti,
    enc_tsa,
    enc_u8,
    enc_u16,
)
from protocols.dlt698.selection import (
    MS,
    RSD,
    Selector1,
    Selector2,
    Selector3,
    Selector4,
    Selector6,
    Selector9,
    Selector10,
)

T = DataType


MAX_DEPTH = 16  # nested arrays/structures a meter plausibly sends; deeper is garbage


@dataclass(frozen=True, slots=True)
class Data:
    """A tagged value: ``type`` and a Python value (see ``protocols.dlt698`` docs for mapping)."""

    type: DataType
    value: Any = None

    @property
    def items(self) -> tuple[Data, ...]:
        """Members of an array or structure."""
        if self.type not in (T.ARRAY, T.STRUCTURE):
            raise TypeError(f"{self.type.name} has no members")
        return tuple(self.value)


NULL = Data(T.NULL)


def enc_road(road: ROAD) -> bytes:
    """ROAD: OAD + SEQUENCE OF OAD."""
    return road.oad.wire + enc_len(len(road.columns)) + b"".join(o.wire for o in road.columns)


def dec_road(buf: bytes, pos: int) -> tuple[ROAD, int]:
    """ROAD."""
    oad, pos = dec_oad(buf, pos)
    n, pos = dec_len(buf, pos)
    cols = []
    for _ in range(n):
        col, pos = dec_oad(buf, pos)
        cols.append(col)
    return ROAD(oad, tuple(cols)), pos


def enc_csd(csd: CSD) -> bytes:
    """CSD: 00 OAD | 01 ROAD."""
    return b"\x00" + csd.wire if isinstance(csd, OAD) else b"\x01" + enc_road(csd)


def dec_csd(buf: bytes, pos: int) -> tuple[CSD, int]:
    """CSD."""
    choice = buf[pos]
    if choice == 0:
        return dec_oad(buf, pos + 1)
    if choice == 1:
        return dec_road(buf, pos + 1)
    raise Dlt698Error(f"CSD choice {choice} is not 0 (OAD) or 1 (ROAD)")


def enc_rcsd(columns: tuple[CSD, ...]) -> bytes:
    """RCSD: SEQUENCE OF CSD."""
    return enc_len(len(columns)) + b"".join(enc_csd(c) for c in columns)


def dec_rcsd(buf: bytes, pos: int) -> tuple[tuple[CSD, ...], int]:
    """RCSD."""
    n, pos = dec_len(buf, pos)
    out = []
    for _ in range(n):
        csd, pos = dec_csd(buf, pos)
        out.append(csd)
    return tuple(out), pos


def enc_ms(ms: MS) -> bytes:
    """MS: choice and items."""
    out = bytes((ms.choice,))
    if ms.choice in (0, 1):
        return out
    out += enc_len(len(ms.items))
    for item in ms.items:
        if ms.choice == 2:
            out += enc_u8(item)
        elif ms.choice == 3:
            out += enc_tsa(item)
        elif ms.choice == 4:
            out += enc_u16(item)
        else:
            out += enc_region(item)
    return out


def dec_ms(buf: bytes, pos: int) -> tuple[MS, int]:
    """MS."""
    choice = buf[pos]
    pos += 1
    if choice in (0, 1):
        return MS(choice), pos
    if choice > 7:
        raise Dlt698Error(f"MS choice {choice} is not 0..7")
    n, pos = dec_len(buf, pos)
    items: list[Any] = []
    for _ in range(n):
        item: Any
        if choice == 2:
            item, pos = buf[pos], pos + 1
        elif choice == 3:
            item, pos = dec_tsa(buf, pos)
        elif choice == 4:
            item, pos = struct.unpack_from(">H", buf, pos)[0], pos + 2
        else:
            item, pos = dec_region(buf, pos)
        items.append(item)
    return MS(choice, tuple(items)), pos


def enc_region(region: Region) -> bytes:
    """Region: unit enum, start Data, end Data."""
    return bytes((region.unit,)) + encode_data(region.start) + encode_data(region.end)


def dec_region(buf: bytes, pos: int) -> tuple[Region, int]:
    """Region."""
    unit = buf[pos]
    start, pos = dec_data(buf, pos + 1)
    end, pos = dec_data(buf, pos)
    return Region(unit, start, end), pos


def enc_rsd(rsd: RSD) -> bytes:
    """RSD: selector number and its fields."""
    if rsd is None:
        return b"\x00"
    if isinstance(rsd, Selector1):
        return b"\x01" + rsd.oad.wire + encode_data(rsd.value)
    if isinstance(rsd, Selector2):
        return b"\x02" + _sel2(rsd)
    if isinstance(rsd, Selector3):
        return b"\x03" + enc_len(len(rsd.ranges)) + b"".join(_sel2(r) for r in rsd.ranges)
    if isinstance(rsd, Selector4):
        if rsd.number not in (4, 5):
            raise Dlt698EncodeError(f"Selector4 number {rsd.number} is not 4 or 5")
        return bytes((rsd.number,)) + enc_dts(rsd.time) + enc_ms(rsd.meters)
    if isinstance(rsd, Selector6):
        if rsd.number not in (6, 7, 8):
            raise Dlt698EncodeError(f"Selector6 number {rsd.number} is not 6, 7 or 8")
        return (
            bytes((rsd.number,))
            + enc_dts(rsd.start)
            + enc_dts(rsd.end)
            + enc_ti(rsd.interval)
            + enc_ms(rsd.meters)
        )
    if isinstance(rsd, Selector9):
        return bytes((9, rsd.last))
    if isinstance(rsd, Selector10):
        return bytes((10, rsd.last)) + enc_ms(rsd.meters)
    raise Dlt698EncodeError(f"{rsd!r} is not a record selector")


def _sel2(sel: Selector2) -> bytes:
    return sel.oad.wire + encode_data(sel.start) + encode_data(sel.end) + encode_data(sel.interval)


def _dec_sel2(buf: bytes, pos: int) -> tuple[Selector2, int]:
    oad, pos = dec_oad(buf, pos)
    start, pos = dec_data(buf, pos)
    end, pos = dec_data(buf, pos)
    step, pos = dec_data(buf, pos)
    return Selector2(oad, start, end, step), pos


def dec_rsd(buf: bytes, pos: int) -> tuple[RSD, int]:
    """RSD."""
    n = buf[pos]
    pos += 1
    if n == 0:
        return None, pos
    if n == 1:
        oad, pos = dec_oad(buf, pos)
        value, pos = dec_data(buf, pos)
        return Selector1(oad, value), pos
    if n == 2:
        return _dec_sel2(buf, pos)
    if n == 3:
        count, pos = dec_len(buf, pos)
        ranges = []
        for _ in range(count):
            sel, pos = _dec_sel2(buf, pos)
            ranges.append(sel)
        return Selector3(tuple(ranges)), pos
    if n in (4, 5):
        when, pos = dec_dts(buf, pos)
        ms, pos = dec_ms(buf, pos)
        return Selector4(when, ms, n), pos
    if n in (6, 7, 8):
        start, pos = dec_dts(buf, pos)
        end, pos = dec_dts(buf, pos)
        ti, pos = dec_ti(buf, pos)
        ms, pos = dec_ms(buf, pos)
        return Selector6(start, end, ti, ms, n), pos
    if n == 9:
        return Selector9(buf[pos]), pos + 1
    if n == 10:
        last = buf[pos]
        ms, pos = dec_ms(buf, pos + 1)
        return Selector10(last, ms), pos
    raise Dlt698Error(f"RSD selector {n} is not 0..10")


_ENC: dict[DataType, Encoder] = {
    **SCALAR_ENC,
    T.ROAD: _typed(ROAD, enc_road),
    T.REGION: _typed(Region, enc_region),
    T.RSD: lambda v: enc_rsd(v),
    T.CSD: _typed(OAD | ROAD, enc_csd),  # type: ignore[arg-type]
    T.MS: _typed(MS, enc_ms),
    T.RCSD: lambda v: enc_rcsd(tuple(v)),
}
_DEC: dict[int, Decoder] = {
    **SCALAR_DEC,
    T.ROAD: dec_road,
    T.REGION: dec_region,
    T.RSD: dec_rsd,
    T.CSD: dec_csd,
    T.MS: dec_ms,
    T.RCSD: dec_rcsd,
}

_TYPES = {int(t): t for t in DataType}


_FIXED: dict[int, tuple[Callable[[bytes, int], tuple[Any, ...]], int, DataType]] = {
    int(tag): (struct.Struct(">" + fmt).unpack_from, struct.calcsize(">" + fmt), tag)
    for tag, fmt in (
        (T.DOUBLE_LONG, "i"),
        (T.DOUBLE_LONG_UNSIGNED, "I"),
        (T.LONG, "h"),
        (T.LONG_UNSIGNED, "H"),
        (T.INTEGER, "b"),
        (T.UNSIGNED, "B"),
        (T.ENUM, "B"),
    )
}


def encode_data(data: Data) -> bytes:
    """Tag + content of ``data``; ``Dlt698EncodeError`` if the value does not fit its type."""
    return b"".join(_enc_parts(data, 0))


def _enc_parts(data: Data, depth: int) -> list[bytes]:
    tag = data.type
    if tag is T.ARRAY or tag is T.STRUCTURE:
        if depth >= MAX_DEPTH:
            raise Dlt698EncodeError(f"nesting deeper than {MAX_DEPTH}")
        items = data.value
        if not isinstance(items, tuple | list):
            raise Dlt698EncodeError(f"{tag.name} needs a tuple of Data, not {items!r}")
        parts = [bytes((tag,)), enc_len(len(items))]
        for item in items:
            if not isinstance(item, Data):
                raise Dlt698EncodeError(f"{item!r} in {tag.name} is not Data")
            parts += _enc_parts(item, depth + 1)
        return parts
    try:
        enc = _ENC[tag]
    except KeyError:
        raise Dlt698EncodeError(f"data type {tag!r} cannot be encoded") from None
    return [bytes((tag,)), enc(data.value)]


def dec_data(buf: bytes, pos: int, depth: int = 0) -> tuple[Data, int]:
    """Tagged Data at ``pos``."""
    tag = buf[pos]
    pos += 1
    if tag == 1 or tag == 2:
        if depth >= MAX_DEPTH:
            raise Dlt698Error(f"nesting deeper than {MAX_DEPTH} at byte {pos}")
        n, pos = dec_len(buf, pos)
        if n > len(buf) - pos:
            raise Dlt698Error(f"{n} members announced at byte {pos}, {len(buf) - pos} bytes left")
        items = []
        fixed = _FIXED
        for _ in range(n):
            kind = fixed.get(buf[pos])
            if kind is None:
                item, pos = dec_data(buf, pos, depth + 1)
            else:  # the common case, inlined: arrays of energies, voltages, powers
                unpack, size, data_type = kind
                item = Data(data_type, unpack(buf, pos + 1)[0])
                pos += 1 + size
            items.append(item)
        return Data(_TYPES[tag], tuple(items)), pos
    dec = _DEC.get(tag)
    if dec is None:
        raise Dlt698Error(f"unknown data type tag {tag} at byte {pos - 1}")
    value, pos = dec(buf, pos)
    return Data(_TYPES[tag], value), pos


def decode_data(raw: bytes) -> Data:
    """Exactly one tagged value; ``Dlt698Error`` if malformed or followed by extra bytes."""
    try:
        data, pos = dec_data(raw, 0)
    except (IndexError, struct.error):
        raise Dlt698Error(f"data truncated ({len(raw)} bytes)") from None
    if pos != len(raw):
        raise Dlt698Error(f"{len(raw) - pos} bytes after the value")
    return data
