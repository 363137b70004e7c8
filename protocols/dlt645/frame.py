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
(``RawCopy`` + ``Checksum``); ``FRAME`` is the same layout without the checksum field and is
compiled once, so the hot path costs a few microseconds; the checksum and the +33H offset are
then a ``sum`` and a ``bytes.translate``.
"""

from __future__ import annotations

from dataclasses import dataclass
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

FRAME: Any = Struct(
    "start" / Const(bytes([START])),
    "address" / Bytes(6),
    "start2" / Const(bytes([START])),
    "control" / Int8ub,
    "length" / Int8ub,
    "data" / Bytes(this.length),
    "checksum" / Int8ub,
    "end" / Const(bytes([END])),
).compile()

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


_NIBBLE_OK = tuple(all(n <= 9 or n == 0xA for n in (b >> 4, b & 0xF)) for b in range(256))


def address_from_wire(raw: bytes) -> str:
    """6 wire bytes to the nameplate address; non-BCD nibbles other than A are an error."""
    for b in raw:
        if not _NIBBLE_OK[b]:
            raise Dlt645Error(f"address bytes {raw.hex(' ')} are not BCD")
    return raw[::-1].hex().upper()


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
    if len(frame.data) > MAX_DATA:
        raise Dlt645EncodeError(f"{len(frame.data)} data bytes exceed the limit of {MAX_DATA}")
    if not 0 <= frame.control <= 0xFF:
        raise Dlt645EncodeError(f"control code {frame.control} is not a byte")
    if not 0 <= preamble <= 16:
        raise Dlt645EncodeError(f"preamble of {preamble} bytes (expected 0..4)")
    address = address_to_wire(frame.address)
    data = frame.data.translate(ADD_33)
    body = b"\x68" + address + b"\x68" + bytes((frame.control, len(data))) + data
    return b"\xfe" * preamble + body + bytes((sum(body) & 0xFF, END))


def parse_frame(raw: bytes) -> Frame:
    """Decode exactly one frame with no preamble (the stream decoder's hot path)."""
    try:
        c = FRAME.parse(raw)
    except ConstructError as exc:
        raise Dlt645Error(f"not a DL/T 645 frame: {exc}") from None
    n = HEADER_LENGTH + c.length
    if len(raw) != n + 2:
        raise Dlt645Error(f"{len(raw) - n - 2} bytes after the end of the frame")
    if sum(raw[:n]) & 0xFF != c.checksum:
        raise Dlt645Error(
            f"checksum {c.checksum:02X} does not match the frame ({sum(raw[:n]) & 0xFF:02X})"
        )
    return Frame(address_from_wire(c.address), c.control, c.data.translate(SUB_33))


def decode_frame(raw: bytes) -> Frame:
    """Decode one whole frame (leading FE wake-up bytes allowed); ``Dlt645Error`` if invalid."""
    raw = bytes(raw)
    start = 0
    while start < len(raw) and raw[start] == PREAMBLE:
        start += 1
    return parse_frame(raw[start:] if start else raw)
