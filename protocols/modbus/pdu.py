"""Modbus RTU framing for both roles, sans-IO.  The only module of Taiqu that imports pymodbus.

Layout of an RTU ADU (Modbus over Serial Line v1.02 §2.5.1), CRC-16/MODBUS low byte first::

    [ silence ≥ 3.5 chars ][ unit ][ function ][ data …    ][ CRC lo ][ CRC hi ]
                             1 B      1 B        0–252 B       2 B

    read request   03/04      unit fc addr_hi addr_lo count_hi count_lo crc crc    8 bytes
    read response  03/04      unit fc byte_count register_hi register_lo … crc crc  5 + 2n bytes
    exception      0x80 | fc  unit fc|0x80 exception_code crc crc                  5 bytes

pymodbus supplies the PDU classes (their frame sizes, encoders and decoders) and the RTU framer
(``FramerRTU.buildFrame`` and its CRC).  Its ``FramerRTU.decode`` is not used for streams: on a CRC
failure it throws the whole buffer away, and it swallows bytes after a good frame, which a shared
bus (several meters, DL/T 645 frames interleaved, line noise) cannot afford.  So the hunt is here:

Stream decoding (``receive_data`` then ``next_event`` until ``NEED_DATA``):

1. At position *i*, every interpretation the role knows gives a candidate frame size from the
   unit and function bytes (and the byte count for responses); none means *i* is noise.
2. A complete candidate with a good CRC is a frame: bytes before *i* are counted as dropped.
   The primary interpretation (responses for a master, requests for a slave) becomes an event;
   the other one (the master's own echo, another meter's reply seen by a slave) is skipped whole
   and counted in ``foreign_frames``.
3. An incomplete candidate waits for more bytes, unless a complete good frame already sits
   further on, in which case *i* was noise.  Otherwise drop one byte and retry.

Nothing here raises on bus input: noise is counted in ``dropped_bytes``.  RTU ends a frame with
line silence, which a sans-IO codec cannot see: the link owner calls ``discard_buffer()`` after a
silence or a response timeout so that a torn frame never glues onto the next one.

Events: a master yields ``RegistersResponse`` / ``ExceptionResponse``; a slave yields
``ReadRegisters`` / ``IllegalRequest`` (a well-formed frame it must answer with an exception).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Final, Literal, TypeAlias

from pymodbus.framer.rtu import FramerRTU
from pymodbus.pdu import DecodePDU, ModbusPDU
from pymodbus.pdu import ExceptionResponse as _PduException
from pymodbus.pdu.register_message import (
    ReadHoldingRegistersRequest,
    ReadHoldingRegistersResponse,
    ReadInputRegistersRequest,
    ReadInputRegistersResponse,
)

from protocols.modbus.errors import ModbusError, ModbusUsageError

READ_HOLDING_REGISTERS: Final = 3
READ_INPUT_REGISTERS: Final = 4
READ_FUNCTIONS: Final = (READ_HOLDING_REGISTERS, READ_INPUT_REGISTERS)
MAX_READ_COUNT: Final = 125  # Modbus Application Protocol v1.1b3 §6.3: 1 … 125 registers
MIN_UNIT: Final = 1
MAX_UNIT: Final = 247  # 0 is broadcast (never answered), 248 … 255 are reserved

# Exception codes, Modbus Application Protocol v1.1b3 §7.
EXCEPTION_NAMES: Final[dict[int, str]] = {
    0x01: "ILLEGAL_FUNCTION",
    0x02: "ILLEGAL_DATA_ADDRESS",
    0x03: "ILLEGAL_DATA_VALUE",
    0x04: "SERVER_DEVICE_FAILURE",
    0x05: "ACKNOWLEDGE",
    0x06: "SERVER_DEVICE_BUSY",
    0x07: "NEGATIVE_ACKNOWLEDGE",
    0x08: "MEMORY_PARITY_ERROR",
    0x0A: "GATEWAY_PATH_UNAVAILABLE",
    0x0B: "GATEWAY_TARGET_DEVICE_FAILED_TO_RESPOND",
}
ILLEGAL_FUNCTION: Final = 0x01
ILLEGAL_DATA_ADDRESS: Final = 0x02
ILLEGAL_DATA_VALUE: Final = 0x03
SERVER_DEVICE_FAILURE: Final = 0x04


def exception_name(code: int) -> str:
    """The Modbus name of exception ``code`` (``UNKNOWN_0xNN`` for codes the spec leaves free)."""
    return EXCEPTION_NAMES.get(code, f"UNKNOWN_0x{code:02X}")


def _check_unit(unit: int) -> None:
    if not MIN_UNIT <= unit <= MAX_UNIT:
        raise ModbusUsageError(f"unit id {unit} outside {MIN_UNIT}…{MAX_UNIT}")


def _check_read_function(function: int) -> None:
    if function not in READ_FUNCTIONS:
        raise ModbusUsageError(f"function {function} is not a register read (3 or 4)")


@dataclass(frozen=True, slots=True)
class ReadRegisters:
    """Request: read ``count`` holding (3) or input (4) registers from ``address`` of ``unit``."""

    unit: int
    function: int
    address: int
    count: int

    def __post_init__(self) -> None:
        _check_unit(self.unit)
        _check_read_function(self.function)
        if not 0 <= self.address <= 0xFFFF:
            raise ModbusUsageError(f"register address {self.address} outside 0…65535")
        if not 1 <= self.count <= MAX_READ_COUNT:
            raise ModbusUsageError(f"register count {self.count} outside 1…{MAX_READ_COUNT}")
        if self.address + self.count > 0x10000:
            raise ModbusUsageError(f"read of {self.count} from {self.address} passes 65535")

    def matches(self, response: RegistersResponse | ExceptionResponse) -> bool:
        """Whether ``response`` answers this request (same unit, function and register count)."""
        if response.unit != self.unit or response.function != self.function:
            return False
        return isinstance(response, ExceptionResponse) or len(response.registers) == self.count


@dataclass(frozen=True, slots=True)
class RegistersResponse:
    """Response: the registers read, as unsigned 16-bit words in address order."""

    unit: int
    function: int
    registers: tuple[int, ...]

    def __post_init__(self) -> None:
        _check_unit(self.unit)
        _check_read_function(self.function)
        object.__setattr__(self, "registers", tuple(self.registers))
        if not 1 <= len(self.registers) <= MAX_READ_COUNT:
            raise ModbusUsageError(f"{len(self.registers)} registers outside 1…{MAX_READ_COUNT}")
        if any(not 0 <= r <= 0xFFFF for r in self.registers):
            raise ModbusUsageError("a register value is outside 0…65535")


@dataclass(frozen=True, slots=True)
class ExceptionResponse:
    """Response: the meter refused ``function`` with exception ``code`` (``name`` per the spec)."""

    unit: int
    function: int
    code: int
    name: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        _check_unit(self.unit)
        if not 1 <= self.function <= 0x7F:
            raise ModbusUsageError(f"function {self.function} outside 1…127")
        if not 1 <= self.code <= 0xFF:
            raise ModbusUsageError(f"exception code {self.code} outside 1…255")
        object.__setattr__(self, "name", exception_name(self.code))


@dataclass(frozen=True, slots=True)
class IllegalRequest:
    """A well-framed request a slave must refuse with exception ``code`` (e.g. a write)."""

    unit: int
    function: int
    code: int


class Sentinel(Enum):
    """Marker values returned instead of an event."""

    NEED_DATA = "NEED_DATA"


NEED_DATA: Final = Sentinel.NEED_DATA
NeedData: TypeAlias = Literal[Sentinel.NEED_DATA]
MasterEvent: TypeAlias = RegistersResponse | ExceptionResponse
SlaveEvent: TypeAlias = ReadRegisters | IllegalRequest

_REQUEST_CLASSES: Final = {3: ReadHoldingRegistersRequest, 4: ReadInputRegistersRequest}
_RESPONSE_CLASSES: Final = {3: ReadHoldingRegistersResponse, 4: ReadInputRegistersResponse}
_MIN_FRAME: Final = 4  # unit, function, CRC: the shortest thing worth looking at


def _size_table(is_server: bool, functions: Sequence[int] | None) -> dict[int, tuple[int, int]]:
    """function code -> (fixed RTU size, byte-count position) from pymodbus's PDU classes."""
    table: dict[int, tuple[int, int]] = {}
    index = 0 if is_server else 1
    for code, classes in DecodePDU.pdu_table.items():
        cls: type[ModbusPDU] = classes[index]
        if functions is not None and code not in functions:
            continue
        if cls.rtu_frame_size or cls.rtu_byte_count_pos:
            table[code] = (cls.rtu_frame_size, cls.rtu_byte_count_pos)
    for code in functions or ():
        if code & 0x80:
            table[code] = (_PduException.rtu_frame_size, 0)
    return table


def _crc_ok(buf: bytearray, start: int, size: int) -> bool:
    end = start + size
    return FramerRTU.compute_CRC(bytes(buf[start : end - 2])) == (buf[end - 2] << 8 | buf[end - 1])


class _Candidates:
    """Frame sizes one interpretation (requests or responses) gives at a buffer position."""

    __slots__ = ("_table", "_units")

    def __init__(self, table: dict[int, tuple[int, int]], units: range) -> None:
        self._table = table
        self._units = units

    def size(self, buf: bytearray, i: int) -> int | None:
        """Candidate frame size at ``i``; 0 when more bytes are needed to tell; None for noise."""
        if buf[i] not in self._units:
            return None
        entry = self._table.get(buf[i + 1])
        if entry is None:
            return None
        fixed, count_pos = entry
        if fixed:
            return fixed
        if i + count_pos >= len(buf):
            return 0
        byte_count = buf[i + count_pos]
        if buf[i + 1] in _RESPONSE_CLASSES and (not byte_count or byte_count & 1):
            return None  # a register response carries 2…250 bytes, always even
        return byte_count + count_pos + 3


class _RtuStream:
    """Reassembles RTU frames from chunks, hunting through noise (see the module docstring)."""

    __slots__ = ("_buf", "_foreign", "_primary", "dropped_bytes", "foreign_frames")

    def __init__(self, primary: _Candidates, foreign: _Candidates) -> None:
        self._buf = bytearray()
        self._primary = primary
        self._foreign = foreign
        self.dropped_bytes = 0
        self.foreign_frames = 0

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        self._buf += data

    def discard(self) -> int:
        n = len(self._buf)
        self.dropped_bytes += n
        self._buf.clear()
        return n

    def _match(self, i: int) -> tuple[int, bool] | int | None:
        """(size, primary?) for a good frame at ``i``; 0 if one may still arrive; None if noise."""
        buf, waiting = self._buf, False
        for candidates, primary in ((self._primary, True), (self._foreign, False)):
            size = candidates.size(buf, i)
            if size is None:
                continue
            if size == 0 or i + size > len(buf):
                waiting = True
            elif _crc_ok(buf, i, size):
                return size, primary
        return 0 if waiting else None

    def next_frame(self) -> bytes | None:
        """The next primary frame (unit … CRC), or None when more bytes are needed."""
        buf = self._buf
        i = 0
        while len(buf) - i >= _MIN_FRAME:
            found = self._match(i)
            if found is None:
                i += 1
                continue
            if isinstance(found, int):  # an incomplete candidate: was it noise?
                later = self._complete_after(i + 1)
                if later is None:
                    break
                i = later
                continue
            size, primary = found
            frame = bytes(buf[i : i + size])
            self.dropped_bytes += i
            del buf[: i + size]
            i = 0
            if primary:
                return frame
            self.foreign_frames += 1
        if i:
            self.dropped_bytes += i
            del buf[:i]
        return None

    def _complete_after(self, start: int) -> int | None:
        for j in range(start, len(self._buf) - _MIN_FRAME + 1):
            if isinstance(self._match(j), tuple):
                return j
        return None


def _build(pdu: ModbusPDU) -> bytes:
    return FramerRTU(_CLIENT_DECODER).buildFrame(pdu)


_CLIENT_DECODER: Final = DecodePDU(is_server=False)
_SERVER_DECODER: Final = DecodePDU(is_server=True)
_RESPONSES: Final = _Candidates(
    _size_table(False, (3, 4, 0x83, 0x84)), range(MIN_UNIT, MAX_UNIT + 1)
)
_READ_REQUESTS: Final = _Candidates(_size_table(True, (3, 4)), range(MIN_UNIT, MAX_UNIT + 1))
# A slave answers requests for any function (ILLEGAL_FUNCTION) and sees unit 0 broadcasts.
_ALL_REQUESTS: Final = _Candidates(_size_table(True, None), range(0, 256))
_ALL_RESPONSES: Final = _Candidates(
    _size_table(False, (*READ_FUNCTIONS, *range(0x81, 0x100))), range(0, 256)
)


def encode_request(request: ReadRegisters) -> bytes:
    """The RTU frame of a read request."""
    pdu = _REQUEST_CLASSES[request.function](
        dev_id=request.unit, address=request.address, count=request.count
    )
    return _build(pdu)


def encode_response(response: RegistersResponse | ExceptionResponse) -> bytes:
    """The RTU frame of a read response or an exception response."""
    pdu: ModbusPDU
    if isinstance(response, ExceptionResponse):
        pdu = _PduException(response.function, response.code, device_id=response.unit)
    else:
        pdu = _RESPONSE_CLASSES[response.function](
            dev_id=response.unit, registers=list(response.registers)
        )
    return _build(pdu)


def _response_event(frame: bytes) -> MasterEvent | None:
    """The event a response frame carries; None if its content is impossible (code 0…)."""
    pdu = _CLIENT_DECODER.decode(frame[1:-2])
    if pdu is None:  # pragma: no cover - sizes were checked before
        return None
    try:
        if pdu.isError():
            return ExceptionResponse(frame[0], pdu.function_code & 0x7F, pdu.exception_code)
        return RegistersResponse(frame[0], pdu.function_code, tuple(pdu.registers))
    except ModbusUsageError:
        return None


def _request_event(frame: bytes) -> SlaveEvent:
    unit, function = frame[0], frame[1]
    if function not in READ_FUNCTIONS:
        return IllegalRequest(unit, function, ILLEGAL_FUNCTION)
    pdu = _SERVER_DECODER.decode(frame[1:-2])  # None when pymodbus rejects the count
    if pdu is None:
        return IllegalRequest(unit, function, ILLEGAL_DATA_VALUE)
    if pdu.address + pdu.count > 0x10000:
        return IllegalRequest(unit, function, ILLEGAL_DATA_ADDRESS)
    return ReadRegisters(unit, function, pdu.address, pdu.count)


class ModbusMaster:
    """The polling side: ``send(ReadRegisters)`` gives bytes; responses come out as events.

    With ``strict`` (the default) only the answer to the request in flight is returned; other
    well-formed responses (a late reply to an abandoned request) are counted in ``stray_frames``.
    """

    def __init__(self, *, strict: bool = True) -> None:
        self._stream = _RtuStream(_RESPONSES, _READ_REQUESTS)  # our own echo is foreign
        self.strict = strict
        self.pending: ReadRegisters | None = None
        self.stray_frames = 0

    @property
    def dropped_bytes(self) -> int:
        """Bytes skipped as noise (or DL/T 645 traffic) so far."""
        return self._stream.dropped_bytes

    @property
    def foreign_frames(self) -> int:
        """Well-formed request frames seen (the adapter's echo of ours, another master)."""
        return self._stream.foreign_frames

    def send(self, request: ReadRegisters) -> bytes:
        """The frame for ``request``, which becomes the request in flight."""
        if not isinstance(request, ReadRegisters):
            raise ModbusUsageError(f"a master sends ReadRegisters, not {type(request).__name__}")
        self.pending = request
        return encode_request(request)

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Feed bytes from the bus, in chunks of any size."""
        self._stream.feed(data)

    def next_event(self) -> MasterEvent | NeedData:
        """The next response, or ``NEED_DATA``."""
        while (frame := self._stream.next_frame()) is not None:
            event = _response_event(frame)
            if event is None:  # well framed, impossible content (exception code 0)
                self._stream.dropped_bytes += len(frame)
                continue
            if self.strict and (self.pending is None or not self.pending.matches(event)):
                self.stray_frames += 1
                continue
            if self.pending is not None and self.pending.matches(event):
                self.pending = None
            return event
        return NEED_DATA

    def discard_buffer(self) -> int:
        """Drop buffered bytes after a line silence or a timeout; returns how many."""
        return self._stream.discard()


class ModbusSlave:
    """The meter side: requests come out as events; ``send(response)`` gives bytes.

    Requests for every unit are returned (one slave object may serve several simulated meters);
    broadcasts (unit 0) and reserved units are skipped, since a read is never answered there.
    """

    def __init__(self) -> None:
        self._stream = _RtuStream(_ALL_REQUESTS, _ALL_RESPONSES)  # other meters are foreign
        self.ignored_frames = 0

    @property
    def dropped_bytes(self) -> int:
        """Bytes skipped as noise (or DL/T 645 traffic) so far."""
        return self._stream.dropped_bytes

    @property
    def foreign_frames(self) -> int:
        """Well-formed response frames from other meters seen so far."""
        return self._stream.foreign_frames

    def send(self, response: RegistersResponse | ExceptionResponse) -> bytes:
        """The frame for ``response``."""
        if not isinstance(response, RegistersResponse | ExceptionResponse):
            raise ModbusUsageError(f"a slave sends responses, not {type(response).__name__}")
        return encode_response(response)

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Feed bytes from the bus, in chunks of any size."""
        self._stream.feed(data)

    def next_event(self) -> SlaveEvent | NeedData:
        """The next request addressed to a unit 1…247, or ``NEED_DATA``."""
        while (frame := self._stream.next_frame()) is not None:
            if not MIN_UNIT <= frame[0] <= MAX_UNIT:
                self.ignored_frames += 1
                continue
            return _request_event(frame)
        return NEED_DATA

    def discard_buffer(self) -> int:
        """Drop buffered bytes after a line silence; returns how many."""
        return self._stream.discard()


@dataclass(frozen=True, slots=True)
class DecodedFrame:
    """One complete frame decoded on its own (the CLI, logs): what it is and what it says."""

    kind: Literal["request", "response", "exception", "illegal_request"]
    message: ReadRegisters | RegistersResponse | ExceptionResponse | IllegalRequest


def crc16(data: bytes) -> bytes:
    """The two CRC bytes (low byte first) that end an RTU frame carrying ``data``."""
    return FramerRTU.compute_CRC(data).to_bytes(2, "big")


def decode_frame(frame: bytes) -> DecodedFrame:
    """Decode exactly one RTU frame; ``ModbusError`` says why it is not one."""
    if len(frame) < 5:
        raise ModbusError(f"an RTU frame has at least 5 bytes, got {len(frame)}")
    if crc16(frame[:-2]) != frame[-2:]:
        raise ModbusError(
            f"CRC mismatch: frame ends {frame[-2:].hex(' ')}, expected {crc16(frame[:-2]).hex(' ')}"
        )
    unit, function = frame[0], frame[1]
    if not MIN_UNIT <= unit <= MAX_UNIT:
        raise ModbusError(f"unit id {unit} is not a meter address (1…247)")
    buf = bytearray(frame)
    if _RESPONSES.size(buf, 0) == len(frame):
        event = _response_event(frame)
        if event is not None:
            kind: Literal["response", "exception"] = (
                "exception" if isinstance(event, ExceptionResponse) else "response"
            )
            return DecodedFrame(kind, event)
    if _ALL_REQUESTS.size(buf, 0) == len(frame):
        request = _request_event(frame)
        if isinstance(request, ReadRegisters):
            return DecodedFrame("request", request)
        return DecodedFrame("illegal_request", request)
    if function & 0x80 and function & 0x7F and len(frame) == 5 and frame[2]:
        return DecodedFrame("exception", ExceptionResponse(unit, function & 0x7F, frame[2]))
    raise ModbusError(f"{len(frame)} bytes are not a valid frame for function 0x{function:02X}")


__all__ = [
    "EXCEPTION_NAMES",
    "ILLEGAL_DATA_ADDRESS",
    "ILLEGAL_DATA_VALUE",
    "ILLEGAL_FUNCTION",
    "MAX_READ_COUNT",
    "MAX_UNIT",
    "MIN_UNIT",
    "NEED_DATA",
    "READ_FUNCTIONS",
    "READ_HOLDING_REGISTERS",
    "READ_INPUT_REGISTERS",
    "SERVER_DEVICE_FAILURE",
    "DecodedFrame",
    "ExceptionResponse",
    "IllegalRequest",
    "MasterEvent",
    "ModbusMaster",
    "ModbusSlave",
    "NeedData",
    "ReadRegisters",
    "RegistersResponse",
    "Sentinel",
    "SlaveEvent",
    "crc16",
    "decode_frame",
    "encode_request",
    "encode_response",
    "exception_name",
]
