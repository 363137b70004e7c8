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

Stream decoding (``RtuStream.feed`` then ``next_frame`` until None; the master and slave of
``protocols.modbus.connection`` wrap it as ``receive_data`` / ``next_event``):

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
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, Literal

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
from protocols.modbus.messages import (
    ILLEGAL_DATA_ADDRESS,
    ILLEGAL_DATA_VALUE,
    ILLEGAL_FUNCTION,
    MAX_UNIT,
    MIN_UNIT,
    READ_FUNCTIONS,
    DecodedFrame,
    ExceptionResponse,
    IllegalRequest,
    MasterEvent,
    ReadRegisters,
    RegistersResponse,
    SlaveEvent,
)

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


class Candidates:
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


class RtuStream:
    """Reassembles RTU frames from chunks, hunting through noise (see the module docstring)."""

    __slots__ = ("_buf", "_foreign", "_primary", "dropped_bytes", "foreign_frames")

    def __init__(self, primary: Candidates, foreign: Candidates) -> None:
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
RESPONSES: Final = Candidates(_size_table(False, (3, 4, 0x83, 0x84)), range(MIN_UNIT, MAX_UNIT + 1))
READ_REQUESTS: Final = Candidates(_size_table(True, (3, 4)), range(MIN_UNIT, MAX_UNIT + 1))
# A slave answers requests for any function (ILLEGAL_FUNCTION) and sees unit 0 broadcasts.
ALL_REQUESTS: Final = Candidates(_size_table(True, None), range(0, 256))
ALL_RESPONSES: Final = Candidates(
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


def response_event(frame: bytes) -> MasterEvent | None:
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


def request_event(frame: bytes) -> SlaveEvent:
    unit, function = frame[0], frame[1]
    if function not in READ_FUNCTIONS:
        return IllegalRequest(unit, function, ILLEGAL_FUNCTION)
    pdu = _SERVER_DECODER.decode(frame[1:-2])  # None when pymodbus rejects the count
    if pdu is None:
        return IllegalRequest(unit, function, ILLEGAL_DATA_VALUE)
    if pdu.address + pdu.count > 0x10000:
        return IllegalRequest(unit, function, ILLEGAL_DATA_ADDRESS)
    return ReadRegisters(unit, function, pdu.address, pdu.count)


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
    if RESPONSES.size(buf, 0) == len(frame):
        event = response_event(frame)
        if event is not None:
            kind: Literal["response", "exception"] = (
                "exception" if isinstance(event, ExceptionResponse) else "response"
            )
            return DecodedFrame(kind, event)
    if ALL_REQUESTS.size(buf, 0) == len(frame):
        request = request_event(frame)
        if isinstance(request, ReadRegisters):
            return DecodedFrame("request", request)
        return DecodedFrame("illegal_request", request)
    if function & 0x80 and function & 0x7F and len(frame) == 5 and frame[2]:
        return DecodedFrame("exception", ExceptionResponse(unit, function & 0x7F, frame[2]))
    raise ModbusError(f"{len(frame)} bytes are not a valid frame for function 0x{function:02X}")


__all__ = [
    "ALL_REQUESTS",
    "ALL_RESPONSES",
    "READ_REQUESTS",
    "RESPONSES",
    "Candidates",
    "RtuStream",
    "crc16",
    "decode_frame",
    "encode_request",
    "encode_response",
    "request_event",
    "response_event",
]
