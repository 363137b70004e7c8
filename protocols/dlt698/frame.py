"""The DL/T 698.45 link-layer frame (DL/T 698.45-2017 clause 6, "帧格式").

Layout::

    68  L0 L1  C  AF  SA (1..16 bytes)  CA  HCS0 HCS1  [F0 F1]  APDU ...  FCS0 FCS1  16
    |   |      |  |   |                 |   |          |        |         |          end
    |   |      |  |   server address    |   header     frag.    user data frame CRC
    |   |      |  address flag          client address CRC      header    (L0 … APDU)
    |   |      control                                 (when C bit 5)
    |   length: bits 0-13 = bytes from L0 through FCS1; bit 14 = unit (1 = kB, rejected)
    start

- C: bit 7 DIR (1 = sent by the server/meter), bit 6 PRM (1 = the client started the exchange,
  0 = the server did), bit 5 fragmented, bit 3 SC (user data scrambled +33H), bits 0-2 function
  (1 link management, 3 user data).  A client request is 43H and the meter's reply C3H; a meter's
  LINK request 81H and the client's answer 01H; a meter's REPORT 83H and the answer 03H.
- AF: bits 0-3 = SA length - 1, bits 4-5 logical address, bits 6-7 address type
  (0 single, 1 wildcard, 2 group, 3 broadcast).  SA is BCD, least significant byte first; in
  ``ServerAddress.address`` it is kept in nameplate order (``000000000001`` travels as
  ``01 00 00 00 00 00``); ``A`` nibbles are wildcards.  Broadcast is AF = C0H, SA = AAH.
- HCS is CRC-16/X-25 (PPP FCS-16, RFC 1662: reflected 1021H, init FFFFH, xor FFFFH, sent
  low byte first) over L0 … CA; FCS the same over L0 … the last APDU byte.
- Fragment header (C bit 5): bits 0-11 fragment number, bits 14-15 type (0 first, 1 last,
  2 confirm, 3 middle).

The layout is declared once with ``construct`` (``FRAME_LAYOUT``); the hot path
(``parse_frame``/``encode_frame``) slices at the same offsets, and ``_reject`` lets construct
name the failing field when a frame is refused.  Tests check both against each other.
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass
from enum import IntEnum
from functools import lru_cache
from typing import Any

from construct import Bytes, Const, ConstructError, Int8ub, Int16ul, Struct, this

from protocols.dlt698.errors import Dlt698EncodeError, Dlt698Error

START = 0x68
END = 0x16
PREAMBLE = 0xFE
MIN_FRAME = 12  # 68 L L C AF SA CA HCS HCS FCS FCS 16 with a 1-byte SA and no APDU
MAX_LENGTH = 0x3FFF

DIR_BIT = 0x80
PRM_BIT = 0x40
FRAG_BIT = 0x20
SC_BIT = 0x08
FUNCTION_MASK = 0x07
FUNCTION_LINK = 1
FUNCTION_DATA = 3


class AddressType(IntEnum):
    """AF bits 6-7."""

    SINGLE = 0
    WILDCARD = 1
    GROUP = 2
    BROADCAST = 3


class FragmentType(IntEnum):
    """Bits 14-15 of the fragment header."""

    FIRST = 0
    LAST = 1
    CONFIRM = 2
    MIDDLE = 3


_REVERSE8 = bytes(int(f"{b:08b}"[::-1], 2) for b in range(256))


def _reverse16(value: int) -> int:
    return (_REVERSE8[value & 0xFF] << 8) | _REVERSE8[value >> 8]


def crc16(data: bytes | bytearray | memoryview) -> int:
    """CRC-16/X-25 (the PPP FCS-16 of RFC 1662) of ``data``.

    X-25 is CRC-CCITT with reflected input and output: computed here with the C implementation
    of the unreflected CRC (``binascii.crc_hqx``) over bit-reversed bytes, then reflected back.
    """
    return _reverse16(binascii.crc_hqx(bytes(data).translate(_REVERSE8), 0xFFFF)) ^ 0xFFFF


_HEADER = Struct(
    "start" / Const(bytes([START])),
    "length" / Int16ul,
    "control" / Int8ub,
    "af" / Int8ub,
    "sa" / Bytes((this.af & 0x0F) + 1),
    "ca" / Int8ub,
    "hcs" / Int16ul,
)
FRAME_LAYOUT: Any = Struct(
    "header" / _HEADER,
    "user_data" / Bytes((this.header.length & MAX_LENGTH) - 9 - (this.header.af & 0x0F) - 1),
    "fcs" / Int16ul,
    "end" / Const(bytes([END])),
)
"""The whole frame, declared once (used to explain rejected frames and in tests)."""


@dataclass(frozen=True, slots=True)
class ServerAddress:
    """A server (meter) address: nameplate-order hex digits, type and logical address."""

    address: str
    kind: AddressType = AddressType.SINGLE
    logical: int = 0

    def __post_init__(self) -> None:
        text = self.address
        if not 2 <= len(text) <= 32 or len(text) % 2:
            raise Dlt698EncodeError(f"server address {text!r} is not 1..16 bytes of hex")
        try:
            bytes.fromhex(text)
        except ValueError:
            raise Dlt698EncodeError(f"server address {text!r} is not hex") from None
        if not 0 <= self.logical <= 3:
            raise Dlt698EncodeError(f"logical address {self.logical} is not 0..3")

    def matches(self, address: str) -> bool:
        """Whether the meter at ``address`` (nameplate order) is addressed by this one."""
        kind = self.kind
        if kind is AddressType.BROADCAST:
            return True
        mine = self.address.upper()
        if kind is AddressType.SINGLE or len(mine) != len(address):
            return mine == address.upper()
        if kind is AddressType.WILDCARD:
            return all(p == "A" or p == a for p, a in zip(mine, address.upper(), strict=True))
        return False  # group addresses are configured per meter; Taiqu's meters have none

    @property
    def wire(self) -> bytes:
        """AF + SA as sent."""
        return _address_wire(self.address, self.kind, self.logical)


@lru_cache(maxsize=2048)
def _address_wire(address: str, kind: AddressType, logical: int) -> bytes:
    sa = bytes.fromhex(address)[::-1]
    return bytes([(int(kind) << 6) | (logical << 4) | (len(sa) - 1)]) + sa


@lru_cache(maxsize=2048)
def _address_from_wire(raw: bytes) -> ServerAddress:
    af = raw[0]
    return ServerAddress(raw[:0:-1].hex().upper(), AddressType(af >> 6), (af >> 4) & 3)


BROADCAST = ServerAddress("AA", AddressType.BROADCAST)
WILDCARD = ServerAddress("AAAAAAAAAAAA", AddressType.WILDCARD)


def server_address(address: str | int | ServerAddress) -> ServerAddress:
    """Accept ``'000000000001'``, ``'0000 0000 0001'``, an int (12 digits) or an address."""
    if isinstance(address, ServerAddress):
        return address
    return _server_address(address)


@lru_cache(maxsize=2048)  # a bus has a few hundred meters at most
def _server_address(address: str | int) -> ServerAddress:
    text = f"{address:012d}" if isinstance(address, int) else address.replace(" ", "").upper()
    if text.isdigit() and len(text) < 12:
        text = text.zfill(12)
    kind = AddressType.WILDCARD if "A" in text else AddressType.SINGLE
    return ServerAddress(text, kind)


@dataclass(frozen=True, slots=True)
class Fragment:
    """The fragment header of a fragmented frame."""

    number: int
    kind: FragmentType

    @property
    def wire(self) -> bytes:
        """The two header bytes."""
        if not 0 <= self.number <= 0xFFF:
            raise Dlt698EncodeError(f"fragment number {self.number} is not 0..4095")
        return (self.number | (int(self.kind) << 14)).to_bytes(2, "little")


@dataclass(frozen=True, slots=True)
class Frame:
    """One link-layer frame: control byte, addresses and the APDU (or APDU fragment)."""

    control: int
    server: ServerAddress
    apdu: bytes
    client: int = 0
    fragment: Fragment | None = None

    @property
    def from_server(self) -> bool:
        """DIR bit: sent by the meter."""
        return bool(self.control & DIR_BIT)

    @property
    def server_started(self) -> bool:
        """PRM bit 0: the server started this exchange (a REPORT, a LINK, or their answers)."""
        return not self.control & PRM_BIT

    @property
    def function(self) -> int:
        """Function code (1 link management, 3 user data)."""
        return self.control & FUNCTION_MASK

    @property
    def scrambled(self) -> bool:
        """SC bit: user data carried +33H on the wire (removed in ``apdu``)."""
        return bool(self.control & SC_BIT)


ADD_33 = bytes((b + 0x33) & 0xFF for b in range(256))
SUB_33 = bytes((b - 0x33) & 0xFF for b in range(256))


def control_byte(from_server: bool, server_started: bool, function: int = FUNCTION_DATA) -> int:
    """The C byte for a direction, who started the exchange and a function code."""
    return (DIR_BIT if from_server else 0) | (0 if server_started else PRM_BIT) | function


def encode_frame(frame: Frame, preamble: int = 0) -> bytes:
    """The wire bytes of ``frame`` (``preamble`` FE wake-up bytes in front)."""
    if not 0 <= frame.client <= 0xFF or not 0 <= frame.control <= 0xFF:
        raise Dlt698EncodeError(f"client address {frame.client} or control is not one byte")
    if not 0 <= preamble <= 16:
        raise Dlt698EncodeError(f"preamble {preamble} is not 0..16")
    control = frame.control & ~FRAG_BIT
    user = frame.apdu
    if frame.fragment is not None:
        control |= FRAG_BIT
        user = frame.fragment.wire + user
    if control & SC_BIT:
        user = user.translate(ADD_33)
    address = frame.server.wire
    length = 2 + 1 + len(address) + 1 + 2 + len(user) + 2
    if length > MAX_LENGTH:
        raise Dlt698EncodeError(f"frame of {length} bytes exceeds the 16383-byte length field")
    head = length.to_bytes(2, "little") + bytes((control,)) + address + bytes((frame.client,))
    head += crc16(head).to_bytes(2, "little")
    body = head + user
    return b"\xfe" * preamble + b"\x68" + body + crc16(body).to_bytes(2, "little") + b"\x16"


def frame_size(raw: bytes | bytearray, i: int = 0) -> int:
    """Total size of the frame starting at ``raw[i]`` (68H) from its length field, or 0."""
    length = raw[i + 1] | (raw[i + 2] << 8)
    if length & 0xC000 or length < MIN_FRAME - 2:
        return 0
    return length + 2


def parse_frame(raw: bytes, checked: bool = False) -> Frame:
    """Decode exactly one frame with no preamble (``checked``: the CRCs are already verified)."""
    n = len(raw)
    if n < MIN_FRAME or raw[0] != START or raw[-1] != END:
        return _reject(raw)
    length = raw[1] | (raw[2] << 8)
    if length & 0xC000 or length + 2 != n:
        return _reject(raw)
    control = raw[3]
    sa_end = 5 + (raw[4] & 0x0F) + 1
    head_end = sa_end + 3  # CA, HCS0, HCS1
    if head_end + 3 > n:
        return _reject(raw)
    if not checked:
        hcs = raw[head_end - 2] | (raw[head_end - 1] << 8)
        if crc16(raw[1 : head_end - 2]) != hcs:
            raise Dlt698Error(f"header check sequence {hcs:04X} does not match the header")
        fcs = raw[n - 3] | (raw[n - 2] << 8)
        if crc16(raw[1 : n - 3]) != fcs:
            raise Dlt698Error(f"frame check sequence {fcs:04X} does not match the frame")
    user = raw[head_end : n - 3]
    if control & SC_BIT:
        user = user.translate(SUB_33)
    fragment = None
    if control & FRAG_BIT:
        if len(user) < 2:
            raise Dlt698Error("fragmented frame without its 2-byte fragment header")
        word = user[0] | (user[1] << 8)
        fragment = Fragment(word & 0xFFF, FragmentType(word >> 14))
        user = user[2:]
    return Frame(control, _address_from_wire(raw[4:sa_end]), user, raw[sa_end], fragment)


def _reject(raw: bytes) -> Frame:
    """Explain why ``raw`` is not one frame (construct names the failing field)."""
    n = len(raw)
    if n < MIN_FRAME:
        raise Dlt698Error(f"{n} bytes is shorter than the smallest frame ({MIN_FRAME} bytes)")
    length = raw[1] | (raw[2] << 8)
    if raw[0] == START and length & 0x4000:
        raise Dlt698Error("length field in kilobyte units is not supported")
    if raw[0] == START and length & 0x8000:
        raise Dlt698Error("reserved bit 15 of the length field is set")
    try:
        c = FRAME_LAYOUT.parse(raw)
    except ConstructError as exc:
        raise Dlt698Error(f"not a DL/T 698.45 frame: {exc}".replace("\n", " ")) from None
    if c.header.length + 2 < n:
        raise Dlt698Error(f"{n - c.header.length - 2} bytes after the end of the frame")
    raise Dlt698Error("frame header and length disagree")  # pragma: no cover - defensive


def decode_frame(raw: bytes | bytearray) -> Frame:
    """Decode one whole frame (leading FE wake-up bytes allowed); ``Dlt698Error`` if invalid."""
    data = bytes(raw)
    if data[:1] == b"\xfe":
        data = data.lstrip(b"\xfe")
    return parse_frame(data)
