"""RTU frames: golden frames, round trips against pymodbus, one-shot decoding of garbage."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pymodbus.framer.rtu import FramerRTU
from pymodbus.pdu import DecodePDU

from protocols.modbus.errors import ModbusError
from protocols.modbus.messages import (
    ExceptionResponse,
    ReadRegisters,
    RegistersResponse,
)
from protocols.modbus.rtu import crc16, decode_frame, encode_request, encode_response
from tests.protocols.modbus.strategies import requests

# Golden frames.  Sources:
#  - "01 03 00 00 00 0A C5 CD": the canonical read of 10 holding registers from unit 1 (Modbus
#    over Serial Line examples, Simply Modbus "Function 03" tutorial style).
#  - "11 03 00 6B 00 03 76 87" / "11 03 06 AE 41 56 52 43 40 49 AD": Simply Modbus, "Read
#    Holding Registers (FC=03)", slave 17 registers 40108…40110.
#  - "11 04 00 08 00 01 B2 98" / "11 04 02 00 0A F8 F4": Simply Modbus, "Read Input Registers
#    (FC=04)", slave 17 register 30009.
#  - "01 04 04 43 66 33 34 1B 38": Tasmota xnrg_11_ddsu666.ino comment, 230.2 V from a DDSU666.
GOLDEN = [
    ("01 03 00 00 00 0A C5 CD", ReadRegisters(1, 3, 0x0000, 10)),
    ("11 03 00 6B 00 03 76 87", ReadRegisters(17, 3, 0x006B, 3)),
    ("11 03 06 AE 41 56 52 43 40 49 AD", RegistersResponse(17, 3, (0xAE41, 0x5652, 0x4340))),
    ("11 04 00 08 00 01 B2 98", ReadRegisters(17, 4, 0x0008, 1)),
    ("11 04 02 00 0A F8 F4", RegistersResponse(17, 4, (0x000A,))),
    ("01 04 04 43 66 33 34 1B 38", RegistersResponse(1, 4, (0x4366, 0x3334))),
]


@pytest.mark.parametrize(("hex_", "message"), GOLDEN)
def test_golden_frames_decode_and_build(hex_, message):
    frame = bytes.fromhex(hex_)
    assert decode_frame(frame).message == message
    built = (
        encode_request(message) if isinstance(message, ReadRegisters) else encode_response(message)
    )
    assert built == frame


def test_exception_response_frame_and_name():
    frame = encode_response(ExceptionResponse(1, 3, 2))
    assert frame == bytes([0x01, 0x83, 0x02]) + crc16(bytes([0x01, 0x83, 0x02]))
    decoded = decode_frame(frame)
    assert decoded.kind == "exception"
    assert decoded.message.name == "ILLEGAL_DATA_ADDRESS"


@given(requests)
@settings(deadline=None)
def test_request_round_trip_and_pymodbus_agrees(request_):
    frame = encode_request(request_)
    assert decode_frame(frame).message == request_
    used, pdu = FramerRTU(DecodePDU(is_server=True)).handleFrame(frame, 0, 0)
    assert used == len(frame)
    assert (pdu.dev_id, pdu.function_code, pdu.address, pdu.count) == (
        request_.unit,
        request_.function,
        request_.address,
        request_.count,
    )


@given(st.binary(max_size=300))
@settings(deadline=None)
def test_random_bytes_only_raise_modbus_error(data):
    try:
        decode_frame(data)
    except ModbusError:
        pass


@given(st.binary(min_size=1, max_size=300))
@settings(deadline=None)
def test_frames_with_a_good_crc_only_raise_modbus_error(body):
    """CRC repaired so the bytes reach the decoder (``08 80 3b``: exception bit on function 0)."""
    try:
        decode_frame(body + crc16(body))
    except ModbusError:
        pass


@pytest.mark.parametrize(
    "hex_",
    [
        "",
        "01 03",
        "01 03 00 00 00 0A C5 CE",
        "01 03 00 00 00 0A 00 C5 CD",
        "00 03 00 00 00 0A 44 0C",
        "01 83 00 00 00",
        "08 80 3b 00 00",
    ],
)
def test_decode_frame_rejects_garbage(hex_):
    data = bytes.fromhex(hex_)
    if len(data) >= 5 and hex_.startswith(("00", "01 83 00", "08 80")):
        data = data[:-2] + crc16(data[:-2])
    with pytest.raises(ModbusError):
        decode_frame(data)
