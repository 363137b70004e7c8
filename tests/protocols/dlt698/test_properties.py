"""Hypothesis: every data type and every APDU round-trips; random bytes raise only Dlt698Error."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.dlt698 import (
    Data,
    Dlt698Error,
    Frame,
    ServerAddress,
    StreamDecoder,
    decode_apdu,
    decode_data,
    decode_frame,
    encode_apdu,
    encode_data,
    encode_frame,
)
from protocols.dlt698.descriptors import DataType
from tests.protocols.dlt698 import strategies as s


@pytest.mark.parametrize("kind", s.SCALAR_TYPES, ids=lambda k: k.name)
@settings(max_examples=25, deadline=None)
@given(st.data())
def test_every_data_type_round_trips(kind: DataType, draw: st.DataObject) -> None:
    value = draw.draw(s.scalar(kind))
    raw = encode_data(value)
    assert raw[0] == kind
    assert decode_data(raw) == value


@settings(max_examples=100, deadline=None)
@given(s.data)
def test_nested_data_round_trips(value: Data) -> None:
    assert decode_data(encode_data(value)) == value


@settings(max_examples=200, deadline=None)
@given(s.apdus)
def test_every_apdu_round_trips(apdu: object) -> None:
    raw = encode_apdu(apdu)  # type: ignore[arg-type]
    assert decode_apdu(raw) == apdu


@settings(max_examples=80, deadline=None)
@given(s.apdus, s.addresses, st.integers(0, 255), st.sampled_from([0x43, 0xC3, 0x81, 0x4B]))
def test_frames_round_trip(apdu: object, server: object, client: int, control: int) -> None:
    frame = Frame(control, server, encode_apdu(apdu), client)  # type: ignore[arg-type]
    assert decode_frame(encode_frame(frame)) == frame


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80))
def test_random_bytes_raise_only_typed_errors(raw: bytes) -> None:
    for decode in (decode_data, decode_apdu, decode_frame):
        try:
            decode(raw)
        except Dlt698Error:
            pass


@settings(max_examples=150, deadline=None)
@given(s.apdus, st.integers(0, 200), st.integers(0, 255))
def test_mutated_apdus_raise_only_typed_errors(apdu: object, at: int, value: int) -> None:
    raw = bytearray(encode_apdu(apdu))  # type: ignore[arg-type]
    raw[at % len(raw)] = value
    for candidate in (bytes(raw), bytes(raw[: at % len(raw)])):
        try:
            decode_apdu(candidate)
        except Dlt698Error:
            pass


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=200), s.apdus)
def test_stream_never_raises_and_finds_the_frame(noise: bytes, apdu: object) -> None:
    frame = Frame(0xC3, ServerAddress("000000000001"), encode_apdu(apdu))  # type: ignore[arg-type]
    stream = StreamDecoder()
    stream.feed(noise + encode_frame(frame))
    found = list(stream)
    assert frame in found


def test_hostile_counts_and_nesting_fail_fast() -> None:
    """A forged reply must not make the decoder loop or recurse without bound."""
    import time

    start = time.perf_counter()
    for raw in (
        b"\x01\x82\xff\xff\x06",  # an array of 65535 members with one byte left
        b"\x01\x01" * 40 + b"\x00",  # nesting deeper than any meter sends
        b"\x09\x82\xff\xff\x00",  # an octet-string longer than the buffer
        b"\x01\x84\x00\x00\x00\x01\x00",  # a 4-byte length field
        b"\x5a\x03\x82\xff\xff",  # Selector3 with 65535 ranges
    ):
        try:
            decode_data(raw)
        except Dlt698Error:
            pass
        else:  # pragma: no cover - the assertion names the input
            raise AssertionError(raw.hex())
    record = bytes.fromhex("850301500402000100000182ffff00000000")
    try:
        decode_apdu(record)
    except Dlt698Error:
        pass
    assert time.perf_counter() - start < 0.5
