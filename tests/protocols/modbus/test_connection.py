"""Master and slave: stream hunting through noise, both roles wired without a port."""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocols.modbus.connection import ModbusMaster, ModbusSlave
from protocols.modbus.messages import (
    NEED_DATA,
    ExceptionResponse,
    IllegalRequest,
    ReadRegisters,
    RegistersResponse,
)
from protocols.modbus.rtu import crc16, encode_request, encode_response
from tests.protocols.modbus.strategies import responses


@given(responses)
@settings(deadline=None)
def test_response_round_trip_through_a_master(response):
    master = ModbusMaster(strict=False)
    master.receive_data(ModbusSlave().send(response))
    assert master.next_event() == response
    assert master.next_event() is NEED_DATA
    assert master.dropped_bytes == 0


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
