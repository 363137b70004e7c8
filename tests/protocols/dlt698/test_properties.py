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
@settings(max_examples=60, deadline=None)
@given(st.data())
def test_every_data_type_round_trips(kind: DataType, draw: st.DataObject) -> None:
    value = draw.draw(s.scalar(kind))
    raw = encode_data(value)
    assert raw[0] == kind
    assert decode_data(raw) == value


@settings(max_examples=200, deadline=None)
@given(s.data)
def test_nested_data_round_trips(value: Data) -> None:
    assert decode_data(encode_data(value)) == value


@settings(max_examples=400, deadline=None)
@given(s.apdus)
def test_every_apdu_round_trips(apdu: object) -> None:
    raw = encode_apdu(apdu)  # type: ignore[arg-type]
    assert decode_apdu(raw) == apdu


@settings(max_examples=200, deadline=None)
@given(s.apdus, s.addresses, st.integers(0, 255), st.sampled_from([0x43, 0xC3, 0x81, 0x4B]))
def test_frames_round_trip(apdu: object, server: object, client: int, control: int) -> None:
    frame = Frame(control, server, encode_apdu(apdu), client)  # type: ignore[arg-type]
    assert decode_frame(encode_frame(frame)) == frame


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=80))
def test_random_bytes_raise_only_typed_errors(raw: bytes) -> None:
    for decode in (decode_data, decode_apdu, decode_frame):
        try:
            decode(raw)
        except Dlt698Error:
            pass


@settings(max_examples=300, deadline=None)
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
