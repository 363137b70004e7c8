"""RTU framing: golden frames, round trips, stream hunting through noise, both roles wired."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymodbus.constants import ExcCodes
from pymodbus.framer.rtu import FramerRTU
from pymodbus.pdu import DecodePDU

from protocols.errors import LocalProtocolError, RemoteProtocolError
from protocols.modbus.errors import ModbusError, ModbusUsageError
from protocols.modbus.pdu import (
    EXCEPTION_NAMES,
    NEED_DATA,
    ExceptionResponse,
    IllegalRequest,
    ModbusMaster,
    ModbusSlave,
    ReadRegisters,
    RegistersResponse,
    crc16,
    decode_frame,
    encode_request,
    encode_response,
)

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

units = st.integers(1, 247)
functions = st.sampled_from([3, 4])
requests = st.builds(
    lambda u, f, a, c: ReadRegisters(u, f, min(a, 0x10000 - c), c),
    units,
    functions,
    st.integers(0, 0xFFFF),
    st.integers(1, 125),
)
responses = st.one_of(
    st.builds(
        RegistersResponse,
        units,
        functions,
        st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=125).map(tuple),
    ),
    st.builds(ExceptionResponse, units, functions, st.integers(1, 255)),
)


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


def test_exception_codes_agree_with_pymodbus():
    for code in ExcCodes:
        assert code.value in EXCEPTION_NAMES
    assert ExceptionResponse(1, 4, 0x42).name == "UNKNOWN_0x42"


def test_errors_sit_in_the_package_tree():
    assert issubclass(ModbusError, RemoteProtocolError)
    assert issubclass(ModbusUsageError, LocalProtocolError)


@pytest.mark.parametrize(
    "args",
    [
        (0, 3, 0, 1),
        (248, 3, 0, 1),
        (1, 6, 0, 1),
        (1, 3, -1, 1),
        (1, 3, 0, 0),
        (1, 3, 0, 126),
        (1, 3, 0xFFFF, 2),
    ],
)
def test_impossible_requests_are_local_errors(args):
    with pytest.raises(ModbusUsageError):
        ReadRegisters(*args)


def test_impossible_responses_are_local_errors():
    with pytest.raises(ModbusUsageError):
        RegistersResponse(1, 3, ())
    with pytest.raises(ModbusUsageError):
        RegistersResponse(1, 3, (0x10000,))
    with pytest.raises(ModbusUsageError):
        ExceptionResponse(1, 3, 0)
    with pytest.raises(ModbusUsageError):
        ModbusMaster().send(RegistersResponse(1, 3, (1,)))  # type: ignore[arg-type]


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


@given(responses)
@settings(deadline=None)
def test_response_round_trip_through_a_master(response):
    master = ModbusMaster(strict=False)
    master.receive_data(ModbusSlave().send(response))
    assert master.next_event() == response
    assert master.next_event() is NEED_DATA
    assert master.dropped_bytes == 0


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


@given(st.binary(max_size=600), st.integers(1, 64))
@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_random_bytes_never_raise_from_streams(data, chunk):
    master, slave = ModbusMaster(strict=False), ModbusSlave()
    for i in range(0, len(data), chunk):
        for conn in (master, slave):
            conn.receive_data(data[i : i + chunk])
            while conn.next_event() is not NEED_DATA:
                pass
    # nothing is lost track of: every byte is buffered, dropped or inside a frame
    assert master.dropped_bytes <= len(data)
    assert slave.dropped_bytes <= len(data)


def _noise(rng: random.Random) -> bytes:
    """Line noise and a DL/T 645 frame, as seen on a mixed concentrator bus."""
    dlt645 = bytes.fromhex("FE FE FE FE 68 11 11 11 11 11 11 68 11 04 33 33 34 33 B5 16")
    return bytes(rng.randrange(256) for _ in range(rng.randrange(0, 9))) + dlt645


@given(st.lists(responses, min_size=1, max_size=6), st.randoms(use_true_random=False))
@settings(deadline=None, max_examples=60)
def test_master_recovers_every_response_from_a_noisy_split_stream(sent, rng):
    stream = b"".join(_noise(rng) + encode_response(r) for r in sent) + _noise(rng)
    master = ModbusMaster(strict=False)
    got = []
    pos = 0
    while pos < len(stream):
        step = rng.randrange(1, 40)
        master.receive_data(stream[pos : pos + step])
        pos += step
        while (event := master.next_event()) is not NEED_DATA:
            got.append(event)
    assert got == sent
    assert master.dropped_bytes > 0


def test_stream_split_at_every_boundary_with_noise():
    sent = [
        RegistersResponse(1, 4, (0x4366, 0x3334)),
        ExceptionResponse(7, 3, 2),
        RegistersResponse(200, 3, tuple(range(60))),
    ]
    noise = b"\x00\xff\x03\x68\x16"
    stream = b"".join(noise + encode_response(r) for r in sent)
    for cut in range(1, len(stream)):
        master = ModbusMaster(strict=False)
        got = []
        for part in (stream[:cut], stream[cut:]):
            master.receive_data(part)
            while (event := master.next_event()) is not NEED_DATA:
                got.append(event)
        assert got == sent, cut
        assert master.dropped_bytes == 3 * len(noise)


def test_slave_stream_byte_by_byte_with_foreign_replies():
    """A slave sees requests for all units and other meters' replies; replies are skipped whole."""
    slave = ModbusSlave()
    traffic = (
        encode_request(ReadRegisters(3, 4, 0, 2))
        + encode_response(
            RegistersResponse(3, 4, (0x0103, 0x0000))
        )  # bytes that look like a request
        + b"\x55\xaa"
        + encode_request(ReadRegisters(5, 3, 0x2000, 16))
    )
    got = []
    for byte in traffic:
        slave.receive_data(bytes([byte]))
        while (event := slave.next_event()) is not NEED_DATA:
            got.append(event)
    assert got == [ReadRegisters(3, 4, 0, 2), ReadRegisters(5, 3, 0x2000, 16)]
    assert slave.foreign_frames == 1
    assert slave.dropped_bytes == 2


def test_slave_turns_unsupported_requests_into_illegal_request_events():
    slave = ModbusSlave()
    write = bytes.fromhex("01 06 00 01 00 03")
    too_many = bytes.fromhex("01 03 00 00 00 7E")  # 126 registers
    past_end = bytes.fromhex("01 04 FF FF 00 02")
    broadcast = bytes.fromhex("00 03 00 00 00 01")
    for body in (write, too_many, past_end, broadcast):
        slave.receive_data(body + crc16(body))
    assert slave.next_event() == IllegalRequest(1, 6, 1)
    assert slave.next_event() == IllegalRequest(1, 3, 3)
    assert slave.next_event() == IllegalRequest(1, 4, 2)
    assert slave.next_event() is NEED_DATA
    assert slave.ignored_frames == 1


def test_master_and_slave_wired_without_a_port():
    master, slave = ModbusMaster(), ModbusSlave()
    request = ReadRegisters(12, 4, 0x0048, 4)
    slave.receive_data(master.send(request))
    assert slave.next_event() == request
    master.receive_data(slave.send(RegistersResponse(12, 4, (1, 2, 3, 4))))
    assert master.next_event() == RegistersResponse(12, 4, (1, 2, 3, 4))
    assert master.pending is None
    assert master.next_event() is NEED_DATA


def test_strict_master_skips_replies_to_other_requests_and_its_own_echo():
    master = ModbusMaster()
    request = ReadRegisters(2, 3, 0, 2)
    frame = master.send(request)
    late = encode_response(RegistersResponse(9, 3, (1, 1)))  # an abandoned poll of unit 9
    wrong_count = encode_response(RegistersResponse(2, 3, (1, 2, 3)))
    good = encode_response(RegistersResponse(2, 3, (7, 8)))
    master.receive_data(frame + late + wrong_count + good)  # adapter echoes our request
    assert master.next_event() == RegistersResponse(2, 3, (7, 8))
    assert master.stray_frames == 2
    assert master.foreign_frames == 1


def test_discard_buffer_drops_a_torn_frame():
    master = ModbusMaster(strict=False)
    full = encode_response(RegistersResponse(1, 3, (1, 2, 3)))
    master.receive_data(full[:6])
    assert master.next_event() is NEED_DATA
    assert master.discard_buffer() == 6
    master.receive_data(full)
    assert master.next_event() == RegistersResponse(1, 3, (1, 2, 3))
    assert master.dropped_bytes == 6


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
