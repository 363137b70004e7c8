"""The DL/T 645 link-layer frame (2007 and 1997 share it).

Layout::

    [FE × 0..4]  68  A0 A1 A2 A3 A4 A5  68  C  L  DATA (L bytes, each +33H)  CS  16
    preamble     |  address, LSB first  |      |  |                          |   end
                 start                  start  control/length                checksum

- Address: 6 BCD bytes, least significant byte first; ``Frame.address`` holds the 12 nameplate
  characters most significant first (``123456789012`` travels as ``12 90 78 56 34 12``).
  ``999999999999`` is broadcast, ``A`` nibbles (``AA`` bytes) are wildcards.
- DATA: every byte +33H mod 256 on the wire; ``Frame.data`` holds it with the offset removed.
- CS: sum mod 256 of every byte from the first 68H through the last data byte.

The layout is declared once with ``construct``: ``FRAME_CHECKED`` is the full declaration
(``RawCopy`` + ``Checksum``), ``FRAME`` the same layout with a plain checksum byte, compiled once.
Even compiled, construct spends ~3 µs per frame building Containers, more than the rest of a full
decode; so at import the declaration is also reduced to its field offsets (``OFFSETS``) and the
hot path (``parse_frame``/``encode_frame``) slices and joins bytes at those offsets.  The tests
check both paths against each other on every golden and generated frame.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from construct import (
    Bytes,
    Checksum,
    Const,
    ConstructError,
    Int8ub,
    RawCopy,
    Struct,
    this,
)

from protocols.dlt645.control import (
    ABNORMAL_BIT,
    DIRECTION_BIT,
    FOLLOW_UP_BIT,
    FUNCTION_MASK,
)
from protocols.dlt645.errors import Dlt645EncodeError, Dlt645Error

START = 0x68
END = 0x16
PREAMBLE = 0xFE
HEADER_LENGTH = 10  # 68 A0..A5 68 C L
OVERHEAD = 12  # header + CS + 16
MAX_DATA = 255
BROADCAST = "999999999999"
WILDCARD = "AAAAAAAAAAAA"

ADD_33 = bytes((b + 0x33) & 0xFF for b in range(256))
SUB_33 = bytes((b - 0x33) & 0xFF for b in range(256))

_BODY = Struct(
    "start" / Const(bytes([START])),
    "address" / Bytes(6),
    "start2" / Const(bytes([START])),
    "control" / Int8ub,
    "length" / Int8ub,
    "data" / Bytes(this.length),
)
FRAME_CHECKED = Struct(
    "body" / RawCopy(_BODY),
    "checksum" / Checksum(Int8ub, lambda raw: sum(raw) & 0xFF, this.body.data),
    "end" / Const(bytes([END])),
)
"""The complete declaration, checksum included (reference; the codec uses ``FRAME``)."""

FRAME_LAYOUT: Any = Struct(
    "start" / Const(bytes([START])),
    "address" / Bytes(6),
    "start2" / Const(bytes([START])),
    "control" / Int8ub,
    "length" / Int8ub,
    "data" / Bytes(this.length),
    "checksum" / Int8ub,
    "end" / Const(bytes([END])),
)
FRAME: Any = FRAME_LAYOUT.compile()
"""``FRAME_LAYOUT`` compiled once (used to explain rejected frames and in tests)."""


def _offsets(layout: Any) -> dict[str, int]:
    """Byte offset of each field up to and including the first variable-size one."""
    out, pos = {}, 0
    for sub in layout.subcons:
        out[sub.name] = pos
        try:
            pos += sub.sizeof()
        except ConstructError:
            break
    return out


OFFSETS = _offsets(FRAME_LAYOUT)
"""``{'start': 0, 'address': 1, 'start2': 7, 'control': 8, 'length': 9, 'data': 10}``."""
_ADDR, _START2, _CONTROL, _LENGTH, _DATA = (
    OFFSETS[k] for k in ("address", "start2", "control", "length", "data")
)
assert _DATA == HEADER_LENGTH and _ADDR + 6 == _START2

_ADDRESS_CHARS = frozenset("0123456789A")


@dataclass(frozen=True, slots=True)
class Frame:
    """One frame: nameplate-order address, control byte, data without the +33H offset."""

    address: str
    control: int
    data: bytes

    @property
    def from_meter(self) -> bool:
        """Direction bit: sent by a meter (a reply), not by the master."""
        return bool(self.control & DIRECTION_BIT)

    @property
    def abnormal(self) -> bool:
        """Abnormal-reply bit."""
        return bool(self.control & ABNORMAL_BIT)

    @property
    def follow_up(self) -> bool:
        """More frames follow."""
        return bool(self.control & FOLLOW_UP_BIT)

    @property
    def function_code(self) -> int:
        """The five function bits."""
        return self.control & FUNCTION_MASK


def address_to_wire(address: str) -> bytes:
    """Nameplate address (12 digits or ``A``) to the 6 wire bytes, least significant first."""
    if len(address) != 12 or not _ADDRESS_CHARS.issuperset(address):
        raise Dlt645EncodeError(
            f"address {address!r} is not 12 digits (or 'A' wildcards) in nameplate order"
        )
    return bytes.fromhex(address)[::-1]


_wire_address = lru_cache(maxsize=1024)(address_to_wire)  # a bus has a few hundred meters at most


_NIBBLE_OK = tuple(all(n <= 9 or n == 0xA for n in (b >> 4, b & 0xF)) for b in range(256))


def address_from_wire(raw: bytes) -> str:
    """6 wire bytes to the nameplate address; non-BCD nibbles other than A are an error."""
    text = raw[::-1].hex()
    if text.isdigit():
        return text
    if not all(_NIBBLE_OK[b] for b in raw):
        raise Dlt645Error(f"address bytes {raw.hex(' ')} are not BCD")
    return text.upper()


def normalize_address(address: str | int) -> str:
    """Accept ``123456789012``, ``'1234 5678 9012'`` or an int; return 12 characters."""
    text = f"{address:012d}" if isinstance(address, int) else address.replace(" ", "").upper()
    if text.isdigit() and len(text) < 12:
        text = text.zfill(12)
    address_to_wire(text)  # validates
    return text


def address_matches(pattern: str, address: str) -> bool:
    """Whether a reply from ``address`` answers a request sent to ``pattern`` (A = any)."""
    return all(p == "A" or p == a for p, a in zip(pattern, address, strict=True))


def checksum(body: bytes) -> int:
    """Sum mod 256 (of the bytes from the first 68H through the last data byte)."""
    return sum(body) & 0xFF


def encode_frame(frame: Frame, preamble: int = 4) -> bytes:
    """The wire bytes of ``frame`` with ``preamble`` wake-up bytes FE in front."""
    data, control = frame.data, frame.control
    if len(data) > MAX_DATA or not 0 <= control <= 0xFF or not 0 <= preamble <= 16:
        raise Dlt645EncodeError(
            f"cannot encode control {control!r} with {len(data)} data bytes "
            f"(at most {MAX_DATA}) and a preamble of {preamble} (0..16)"
        )
    body = b"\x68" + _wire_address(frame.address) + b"\x68" + bytes((control, len(data)))
    body += data.translate(ADD_33)
    return b"\xfe" * preamble + body + bytes((sum(body) & 0xFF, END))


def parse_frame(raw: bytes) -> Frame:
    """Decode exactly one frame with no preamble (the stream decoder's hot path)."""
    n = len(raw)
    if (
        n < OVERHEAD
        or raw[0] != START
        or raw[_START2] != START
        or raw[-1] != END
        or n != OVERHEAD + raw[_LENGTH]
    ):
        return _reject(raw)
    end = n - 2
    if sum(raw[:end]) & 0xFF != raw[end]:
        raise Dlt645Error(
            f"checksum {raw[end]:02X} does not match the frame ({sum(raw[:end]) & 0xFF:02X})"
        )
    return Frame(
        address_from_wire(raw[_ADDR:_START2]), raw[_CONTROL], raw[_DATA:end].translate(SUB_33)
    )


def _reject(raw: bytes) -> Frame:
    """Explain why ``raw`` is not one frame (construct names the failing field)."""
    n = len(raw)
    if n < OVERHEAD:
        raise Dlt645Error(f"{n} bytes is shorter than the smallest frame ({OVERHEAD} bytes)")
    try:
        c = FRAME.parse(raw)
    except ConstructError as exc:
        raise Dlt645Error(f"not a DL/T 645 frame: {exc}") from None
    except struct.error:  # the compiled parser reads fixed-size fields with struct, unguarded
        raise Dlt645Error(
            f"truncated: {n} bytes, but the length byte announces {raw[_LENGTH]} data bytes "
            f"({OVERHEAD + raw[_LENGTH]} bytes in all)"
        ) from None
    extra = len(raw) - OVERHEAD - c.length
    raise Dlt645Error(f"{extra} bytes after the end of the frame")


def decode_frame(raw: bytes) -> Frame:
    """Decode one whole frame (leading FE wake-up bytes allowed); ``Dlt645Error`` if invalid."""
    if raw[:1] == b"\xfe":
        raw = raw.lstrip(b"\xfe")
    return parse_frame(bytes(raw))
