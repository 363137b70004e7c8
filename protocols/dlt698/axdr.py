"""A-XDR encoding of ``Data`` and the descriptors (DL/T 698.45-2017 clause 7.3, annex on A-XDR).

Every value on the wire is a type tag followed by its content; composite descriptors (OAD, RSD,
CSD …) also appear untagged inside APDUs, so each has an untagged ``enc_*``/``dec_*`` pair here.
Integers are big-endian; lengths are one byte below 128, else 8nH followed by n length bytes.

Decoders take ``(buf, pos)`` and return ``(value, new_pos)``.  They index without bounds checks
(the fast path); the public entry points (``decode_data`` and the APDU codec) turn the
``IndexError``/``struct.error`` of a truncated buffer into ``Dlt698Error``.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from protocols.dlt698.descriptors import (
    COMDCB,
    CSD,
    MS,
    OAD,
    OMD,
    ROAD,
    RSD,
    SID,
    SIDMAC,
    TI,
    BitString,
    DataType,
    Date,
    DateTime,
    DateTimeS,
    Region,
    ScalerUnit,
    Selector1,
    Selector2,
    Selector3,
    Selector4,
    Selector6,
    Selector9,
    Selector10,
    Time,
)
from protocols.dlt698.errors import Dlt698EncodeError, Dlt698Error
from protocols.dlt698.frame import AddressType, ServerAddress

T = DataType
MAX_DEPTH = 16  # nested arrays/structures a meter plausibly sends; deeper is garbage


@dataclass(frozen=True, slots=True)
class Data:
    """A tagged value: ``type`` and a Python value (see ``protocols.dlt698`` docs for mapping)."""

    type: DataType
    value: Any = None

    def __iter__(self) -> Any:
        return iter(self.value)

    @property
    def items(self) -> tuple[Data, ...]:
        """Members of an array or structure."""
        if self.type not in (T.ARRAY, T.STRUCTURE):
            raise TypeError(f"{self.type.name} has no members")
        return tuple(self.value)


NULL = Data(T.NULL)


# ------------------------------------------------------------------ lengths


def enc_len(n: int) -> bytes:
    """A-XDR length."""
    if n < 0x80:
        return bytes((n,))
    size = (n.bit_length() + 7) // 8
    return bytes((0x80 | size,)) + n.to_bytes(size, "big")


def dec_len(buf: bytes, pos: int) -> tuple[int, int]:
    """A-XDR length at ``pos``."""
    first = buf[pos]
    if first < 0x80:
        return first, pos + 1
    size = first & 0x7F
    if not 1 <= size <= 2:
        raise Dlt698Error(f"length of {size} bytes is not supported (at byte {pos})")
    end = pos + 1 + size
    if end > len(buf):
        raise IndexError
    return int.from_bytes(buf[pos + 1 : end], "big"), end


def _take(buf: bytes, pos: int, n: int) -> tuple[bytes, int]:
    end = pos + n
    if end > len(buf):
        raise Dlt698Error(f"{n} bytes announced at byte {pos}, only {len(buf) - pos} left")
    return buf[pos:end], end


# ------------------------------------------------------------------ descriptors


@lru_cache(maxsize=4096)
def _oad(raw: bytes) -> OAD:
    return OAD((raw[0] << 8) | raw[1], raw[2] & 0x1F, raw[3], raw[2] >> 5)


def dec_oad(buf: bytes, pos: int) -> tuple[OAD, int]:
    """OAD (4 bytes)."""
    end = pos + 4
    if end > len(buf):
        raise IndexError
    return _oad(bytes(buf[pos:end])), end


def dec_omd(buf: bytes, pos: int) -> tuple[OMD, int]:
    """OMD (4 bytes)."""
    if pos + 4 > len(buf):
        raise IndexError
    return OMD((buf[pos] << 8) | buf[pos + 1], buf[pos + 2], buf[pos + 3]), pos + 4


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


def enc_tsa(tsa: ServerAddress) -> bytes:
    """TSA: length, address flag, address bytes in nameplate order."""
    sa = bytes.fromhex(tsa.address)
    af = (int(tsa.kind) << 6) | (tsa.logical << 4) | (len(sa) - 1)
    return enc_len(len(sa) + 1) + bytes((af,)) + sa


def dec_tsa(buf: bytes, pos: int) -> tuple[ServerAddress, int]:
    """TSA."""
    n, pos = dec_len(buf, pos)
    raw, pos = _take(buf, pos, n)
    if n < 2 or (raw[0] & 0x0F) + 2 != n:
        raise Dlt698Error(f"TSA of {n} bytes does not match its address flag")
    af = raw[0]
    return ServerAddress(raw[1:].hex().upper(), AddressType(af >> 6), (af >> 4) & 3), pos


def enc_dts(t: DateTimeS) -> bytes:
    """date_time_s (7 bytes)."""
    return struct.pack(">HBBBBB", t.year, t.month, t.day, t.hour, t.minute, t.second)


def dec_dts(buf: bytes, pos: int) -> tuple[DateTimeS, int]:
    """date_time_s."""
    return DateTimeS(*struct.unpack_from(">HBBBBB", buf, pos)), pos + 7


def enc_ms(ms: MS) -> bytes:
    """MS: choice and items."""
    out = bytes((ms.choice,))
    if ms.choice in (0, 1):
        return out
    out += enc_len(len(ms.items))
    for item in ms.items:
        if ms.choice == 2:
            out += _u8(item)
        elif ms.choice == 3:
            out += enc_tsa(item)
        elif ms.choice == 4:
            out += _u16(item)
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


def enc_ti(ti: TI) -> bytes:
    """TI: unit enum, interval long-unsigned."""
    return struct.pack(">BH", ti.unit, ti.interval)


def dec_ti(buf: bytes, pos: int) -> tuple[TI, int]:
    """TI."""
    return TI(*struct.unpack_from(">BH", buf, pos)), pos + 3


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


# ------------------------------------------------------------------ Data


def _u8(v: int) -> bytes:
    if not 0 <= v <= 0xFF:
        raise Dlt698EncodeError(f"{v} is not 0..255")
    return bytes((v,))


def _u16(v: int) -> bytes:
    if not 0 <= v <= 0xFFFF:
        raise Dlt698EncodeError(f"{v} is not 0..65535")
    return v.to_bytes(2, "big")


def _int(fmt: str) -> tuple[Callable[[Any], bytes], Callable[[bytes, int], tuple[Any, int]]]:
    packer = struct.Struct(">" + fmt)
    size = packer.size
    pack, unpack = packer.pack, packer.unpack_from

    def enc(v: Any) -> bytes:
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise Dlt698EncodeError(f"{v!r} is not a number")
        try:
            return pack(v)
        except (struct.error, OverflowError):
            raise Dlt698EncodeError(f"{v!r} does not fit {fmt}") from None

    def dec(buf: bytes, pos: int) -> tuple[Any, int]:
        return unpack(buf, pos)[0], pos + size

    return enc, dec


def _octets(v: Any) -> bytes:
    if not isinstance(v, bytes | bytearray):
        raise Dlt698EncodeError(f"{v!r} is not bytes")
    return enc_len(len(v)) + bytes(v)


def _dec_octets(buf: bytes, pos: int) -> tuple[bytes, int]:
    n, pos = dec_len(buf, pos)
    return _take(buf, pos, n)


def _visible(v: Any) -> bytes:
    if not isinstance(v, str):
        raise Dlt698EncodeError(f"{v!r} is not a string")
    try:
        raw = v.encode("latin-1")
    except UnicodeEncodeError:
        raise Dlt698EncodeError(f"{v!r} is not a visible (8-bit) string") from None
    return enc_len(len(raw)) + raw


def _dec_visible(buf: bytes, pos: int) -> tuple[str, int]:
    raw, pos = _dec_octets(buf, pos)
    return raw.decode("latin-1"), pos


def _utf8(v: Any) -> bytes:
    if not isinstance(v, str):
        raise Dlt698EncodeError(f"{v!r} is not a string")
    raw = v.encode("utf-8", "surrogatepass")
    return enc_len(len(raw)) + raw


def _dec_utf8(buf: bytes, pos: int) -> tuple[str, int]:
    raw, pos = _dec_octets(buf, pos)
    try:
        return raw.decode("utf-8"), pos
    except UnicodeDecodeError:
        raise Dlt698Error(f"UTF8-string at byte {pos - len(raw)} is not UTF-8") from None


def _bits(v: Any) -> bytes:
    if not isinstance(v, BitString):
        raise Dlt698EncodeError(f"{v!r} is not a BitString")
    return enc_len(v.bits) + v.value


def _dec_bits(buf: bytes, pos: int) -> tuple[BitString, int]:
    n, pos = dec_len(buf, pos)
    raw, pos = _take(buf, pos, (n + 7) // 8)
    return BitString(n, raw), pos


def _bool(v: Any) -> bytes:
    if not isinstance(v, bool):
        raise Dlt698EncodeError(f"{v!r} is not a bool")
    return b"\x01" if v else b"\x00"


def _typed(cls: type, enc: Callable[[Any], bytes]) -> Callable[[Any], bytes]:
    def check(v: Any) -> bytes:
        if not isinstance(v, cls):
            raise Dlt698EncodeError(f"{v!r} is not a {cls.__name__}")
        return enc(v)

    return check


def _dt(v: DateTime) -> bytes:
    return struct.pack(
        ">HBBBBBBH", v.year, v.month, v.day, v.weekday, v.hour, v.minute, v.second, v.millisecond
    )


_DT = struct.Struct(">HBBBBBBH")
_ENC: dict[DataType, Callable[[Any], bytes]] = {}
_DEC: dict[int, Callable[[bytes, int], tuple[Any, int]]] = {}
for _tag, _fmt in (
    (T.DOUBLE_LONG, "i"),
    (T.DOUBLE_LONG_UNSIGNED, "I"),
    (T.INTEGER, "b"),
    (T.LONG, "h"),
    (T.UNSIGNED, "B"),
    (T.LONG_UNSIGNED, "H"),
    (T.LONG64, "q"),
    (T.LONG64_UNSIGNED, "Q"),
    (T.ENUM, "B"),
    (T.OI, "H"),
):
    _ENC[_tag], _DEC[_tag] = _int(_fmt)
for _tag, _fmt in ((T.FLOAT32, "f"), (T.FLOAT64, "d")):
    _packer = struct.Struct(">" + _fmt)
    _ENC[_tag] = _int(_fmt)[0]
    _DEC[_tag] = _int(_fmt)[1]

_ENC.update(
    {
        T.NULL: lambda v: b"",
        T.BOOL: _bool,
        T.BIT_STRING: _bits,
        T.OCTET_STRING: _octets,
        T.VISIBLE_STRING: _visible,
        T.UTF8_STRING: _utf8,
        T.MAC: _octets,
        T.RN: _octets,
        T.DATE_TIME: _typed(DateTime, _dt),
        T.DATE: _typed(Date, lambda v: struct.pack(">HBBB", v.year, v.month, v.day, v.weekday)),
        T.TIME: _typed(Time, lambda v: bytes((v.hour, v.minute, v.second))),
        T.DATE_TIME_S: _typed(DateTimeS, enc_dts),
        T.OAD: _typed(OAD, lambda v: v.wire),
        T.OMD: _typed(OMD, lambda v: v.wire),
        T.ROAD: _typed(ROAD, enc_road),
        T.TI: _typed(TI, enc_ti),
        T.TSA: _typed(ServerAddress, enc_tsa),
        T.REGION: _typed(Region, enc_region),
        T.SCALER_UNIT: _typed(ScalerUnit, lambda v: struct.pack(">bB", v.scaler, v.unit)),
        T.RSD: lambda v: enc_rsd(v),
        T.CSD: _typed(OAD | ROAD, enc_csd),  # type: ignore[arg-type]
        T.MS: _typed(MS, enc_ms),
        T.SID: _typed(SID, lambda v: struct.pack(">I", v.ident) + _octets(v.extra)),
        T.SID_MAC: _typed(
            SIDMAC, lambda v: struct.pack(">I", v.sid.ident) + _octets(v.sid.extra) + _octets(v.mac)
        ),
        T.COMDCB: _typed(
            COMDCB, lambda v: bytes((v.baud, v.parity, v.data_bits, v.stop_bits, v.flow))
        ),
        T.RCSD: lambda v: enc_rcsd(tuple(v)),
    }
)


def _dec_sid(buf: bytes, pos: int) -> tuple[SID, int]:
    ident = struct.unpack_from(">I", buf, pos)[0]
    extra, pos = _dec_octets(buf, pos + 4)
    return SID(ident, extra), pos


def _dec_sid_mac(buf: bytes, pos: int) -> tuple[SIDMAC, int]:
    sid, pos = _dec_sid(buf, pos)
    mac, pos = _dec_octets(buf, pos)
    return SIDMAC(sid, mac), pos


def _dec_fixed(n: int, build: Callable[[bytes], Any]) -> Callable[[bytes, int], tuple[Any, int]]:
    def dec(buf: bytes, pos: int) -> tuple[Any, int]:
        raw, end = _take(buf, pos, n)
        return build(raw), end

    return dec


_DEC.update(
    {
        T.NULL: lambda buf, pos: (None, pos),
        T.BOOL: lambda buf, pos: (buf[pos] != 0, pos + 1),
        T.BIT_STRING: _dec_bits,
        T.OCTET_STRING: _dec_octets,
        T.VISIBLE_STRING: _dec_visible,
        T.UTF8_STRING: _dec_utf8,
        T.MAC: _dec_octets,
        T.RN: _dec_octets,
        T.DATE_TIME: _dec_fixed(10, lambda r: DateTime(*_DT.unpack(r))),
        T.DATE: _dec_fixed(5, lambda r: Date(*struct.unpack(">HBBB", r))),
        T.TIME: _dec_fixed(3, lambda r: Time(r[0], r[1], r[2])),
        T.DATE_TIME_S: dec_dts,
        T.OAD: dec_oad,
        T.OMD: dec_omd,
        T.ROAD: dec_road,
        T.TI: dec_ti,
        T.TSA: dec_tsa,
        T.REGION: dec_region,
        T.SCALER_UNIT: _dec_fixed(2, lambda r: ScalerUnit(*struct.unpack(">bB", r))),
        T.RSD: dec_rsd,
        T.CSD: dec_csd,
        T.MS: dec_ms,
        T.SID: _dec_sid,
        T.SID_MAC: _dec_sid_mac,
        T.COMDCB: _dec_fixed(5, lambda r: COMDCB(*r)),
        T.RCSD: dec_rcsd,
    }
)
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
