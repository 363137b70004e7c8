"""A-XDR lengths and the scalar types of DL/T 698.45 (everything that holds no nested Data).

Integers are big-endian; lengths are one byte below 128, else 8nH followed by n length bytes.
Decoders take ``(buf, pos)`` and return ``(value, new_pos)`` without bounds checks on the fast
path; ``axdr.decode_data`` and the APDU decoder turn the ``IndexError``/``struct.error`` of a
truncated buffer into ``Dlt698Error``.  ``SCALAR_ENC``/``SCALAR_DEC`` map data tags to codecs;
``axdr`` adds the composite types (array, structure, ROAD, CSD, MS, Region, RSD) on top.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from protocols.dlt698.datetimes import TI, Date, DateTime, DateTimeS, Time
from protocols.dlt698.descriptors import (
    COMDCB,
    OAD,
    OMD,
    SID,
    SIDMAC,
    BitString,
    DataType,
    ScalerUnit,
)
from protocols.dlt698.errors import Dlt698EncodeError, Dlt698Error
from protocols.dlt698.frame import AddressType, ServerAddress

T = DataType
Encoder = Callable[[Any], bytes]
Decoder = Callable[[bytes, int], tuple[Any, int]]


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


def take(buf: bytes, pos: int, n: int) -> tuple[bytes, int]:
    end = pos + n
    if end > len(buf):
        raise Dlt698Error(f"{n} bytes announced at byte {pos}, only {len(buf) - pos} left")
    return buf[pos:end], end


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


def enc_tsa(tsa: ServerAddress) -> bytes:
    """TSA: length, address flag, address bytes in nameplate order."""
    sa = bytes.fromhex(tsa.address)
    af = (int(tsa.kind) << 6) | (tsa.logical << 4) | (len(sa) - 1)
    return enc_len(len(sa) + 1) + bytes((af,)) + sa


def dec_tsa(buf: bytes, pos: int) -> tuple[ServerAddress, int]:
    """TSA."""
    n, pos = dec_len(buf, pos)
    raw, pos = take(buf, pos, n)
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


def enc_ti(ti: TI) -> bytes:
    """TI: unit enum, interval long-unsigned."""
    return struct.pack(">BH", ti.unit, ti.interval)


def dec_ti(buf: bytes, pos: int) -> tuple[TI, int]:
    """TI."""
    return TI(*struct.unpack_from(">BH", buf, pos)), pos + 3


def enc_u8(v: int) -> bytes:
    if not 0 <= v <= 0xFF:
        raise Dlt698EncodeError(f"{v} is not 0..255")
    return bytes((v,))


def enc_u16(v: int) -> bytes:
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


def enc_octets(v: Any) -> bytes:
    if not isinstance(v, bytes | bytearray):
        raise Dlt698EncodeError(f"{v!r} is not bytes")
    return enc_len(len(v)) + bytes(v)


def dec_octets(buf: bytes, pos: int) -> tuple[bytes, int]:
    n, pos = dec_len(buf, pos)
    return take(buf, pos, n)


def _visible(v: Any) -> bytes:
    if not isinstance(v, str):
        raise Dlt698EncodeError(f"{v!r} is not a string")
    try:
        raw = v.encode("latin-1")
    except UnicodeEncodeError:
        raise Dlt698EncodeError(f"{v!r} is not a visible (8-bit) string") from None
    return enc_len(len(raw)) + raw


def _dec_visible(buf: bytes, pos: int) -> tuple[str, int]:
    raw, pos = dec_octets(buf, pos)
    return raw.decode("latin-1"), pos


def _utf8(v: Any) -> bytes:
    if not isinstance(v, str):
        raise Dlt698EncodeError(f"{v!r} is not a string")
    raw = v.encode("utf-8", "surrogatepass")
    return enc_len(len(raw)) + raw


def _dec_utf8(buf: bytes, pos: int) -> tuple[str, int]:
    raw, pos = dec_octets(buf, pos)
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
    raw, pos = take(buf, pos, (n + 7) // 8)
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


def _dec_sid(buf: bytes, pos: int) -> tuple[SID, int]:
    ident = struct.unpack_from(">I", buf, pos)[0]
    extra, pos = dec_octets(buf, pos + 4)
    return SID(ident, extra), pos


def _dec_sid_mac(buf: bytes, pos: int) -> tuple[SIDMAC, int]:
    sid, pos = _dec_sid(buf, pos)
    mac, pos = dec_octets(buf, pos)
    return SIDMAC(sid, mac), pos


def _dec_fixed(n: int, build: Callable[[bytes], Any]) -> Callable[[bytes, int], tuple[Any, int]]:
    def dec(buf: bytes, pos: int) -> tuple[Any, int]:
        raw, end = take(buf, pos, n)
        return build(raw), end

    return dec


_DT = struct.Struct(">HBBBBBBH")
SCALAR_ENC: dict[DataType, Encoder] = {}
SCALAR_DEC: dict[int, Decoder] = {}
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
    (T.FLOAT32, "f"),
    (T.FLOAT64, "d"),
):
    SCALAR_ENC[_tag], SCALAR_DEC[_tag] = _int(_fmt)

SCALAR_ENC.update(
    {
        T.NULL: lambda v: b"",
        T.BOOL: _bool,
        T.BIT_STRING: _bits,
        T.OCTET_STRING: enc_octets,
        T.VISIBLE_STRING: _visible,
        T.UTF8_STRING: _utf8,
        T.MAC: enc_octets,
        T.RN: enc_octets,
        T.DATE_TIME: _typed(DateTime, _dt),
        T.DATE: _typed(Date, lambda v: struct.pack(">HBBB", v.year, v.month, v.day, v.weekday)),
        T.TIME: _typed(Time, lambda v: bytes((v.hour, v.minute, v.second))),
        T.DATE_TIME_S: _typed(DateTimeS, enc_dts),
        T.OAD: _typed(OAD, lambda v: v.wire),
        T.OMD: _typed(OMD, lambda v: v.wire),
        T.TI: _typed(TI, enc_ti),
        T.TSA: _typed(ServerAddress, enc_tsa),
        T.SCALER_UNIT: _typed(ScalerUnit, lambda v: struct.pack(">bB", v.scaler, v.unit)),
        T.SID: _typed(SID, lambda v: struct.pack(">I", v.ident) + enc_octets(v.extra)),
        T.SID_MAC: _typed(
            SIDMAC,
            lambda v: struct.pack(">I", v.sid.ident) + enc_octets(v.sid.extra) + enc_octets(v.mac),
        ),
        T.COMDCB: _typed(
            COMDCB, lambda v: bytes((v.baud, v.parity, v.data_bits, v.stop_bits, v.flow))
        ),
    }
)
SCALAR_DEC.update(
    {
        T.NULL: lambda buf, pos: (None, pos),
        T.BOOL: lambda buf, pos: (buf[pos] != 0, pos + 1),
        T.BIT_STRING: _dec_bits,
        T.OCTET_STRING: dec_octets,
        T.VISIBLE_STRING: _dec_visible,
        T.UTF8_STRING: _dec_utf8,
        T.MAC: dec_octets,
        T.RN: dec_octets,
        T.DATE_TIME: _dec_fixed(10, lambda r: DateTime(*_DT.unpack(r))),
        T.DATE: _dec_fixed(5, lambda r: Date(*struct.unpack(">HBBB", r))),
        T.TIME: _dec_fixed(3, lambda r: Time(r[0], r[1], r[2])),
        T.DATE_TIME_S: dec_dts,
        T.OAD: dec_oad,
        T.OMD: dec_omd,
        T.TI: dec_ti,
        T.TSA: dec_tsa,
        T.SCALER_UNIT: _dec_fixed(2, lambda r: ScalerUnit(*struct.unpack(">bB", r))),
        T.SID: _dec_sid,
        T.SID_MAC: _dec_sid_mac,
        T.COMDCB: _dec_fixed(5, lambda r: COMDCB(*r)),
    }
)
