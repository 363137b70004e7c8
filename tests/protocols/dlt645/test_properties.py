"""Hypothesis: round trips for every identifier; random bytes raise only the codec's errors."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocols.dlt645 import (
    NEED_DATA,
    Dlt645Error,
    Frame,
    Master,
    ReadData,
    Slave,
    StreamDecoder,
    Version,
    decode_frame,
    decode_reply,
    decode_request,
    decode_value,
    encode_frame,
    encode_value,
)
from protocols.dlt645.layouts import StatusWord
from protocols.errors import ProtocolError
from tests.protocols.dlt645.strategies import all_rows, frames, value_of

ROWS = all_rows()


def _words_as_ints(value):
    """Status words decode to ``StatusWord``; the strategies draw their raw ints."""
    if isinstance(value, StatusWord):
        return value.raw
    if isinstance(value, dict):
        return {k: _words_as_ints(v) for k, v in value.items()}
    return value


@pytest.mark.parametrize("row", ROWS, ids=lambda r: f"{r.version.value}-{r.hex}")
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_encode_decode_is_identity_for_every_identifier(row, data):
    value = data.draw(value_of(row.layout))
    raw = encode_value(row.di, value, row.version)
    assert row.valid_length(len(raw))
    decoded = decode_value(row.di, raw, row.version)
    assert _words_as_ints(decoded) == value
    assert encode_value(row.di, decoded, row.version) == raw  # and back to the same bytes


@given(frames, st.integers(0, 4))
def test_frame_round_trip(frame, preamble):
    assert decode_frame(encode_frame(frame, preamble)) == frame


@given(st.binary(max_size=300))
def test_random_bytes_raise_only_codec_errors(raw):
    try:
        frame = decode_frame(raw)
    except Dlt645Error:
        return
    for version in Version:
        for decode in (decode_reply, decode_request):
            try:
                decode(frame, version)
            except Dlt645Error:
                pass


@given(frames, st.integers(0, 255), st.data())
def test_wrong_length_byte_or_truncation_is_a_codec_error(frame, length, data):
    """A header whose length byte disagrees with the bytes that follow (fuzzing found
    ``68 … 68`` raising ``struct.error`` from construct's compiled parser)."""
    raw = bytearray(encode_frame(frame, 0))
    raw[9] = length
    raw = bytes(raw[: data.draw(st.integers(0, len(raw)), label="cut")])
    try:
        decoded = decode_frame(raw)
    except Dlt645Error as exc:
        assert str(exc)
    else:
        assert encode_frame(decoded, 0) == raw


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ("68 00 00 00 00 00 00 68", "shorter than the smallest frame"),
        ("68 00 00 00 00 00 00 68 11", "shorter than the smallest frame"),
        ("68 00 00 00 00 00 00 68 11 02 00 00", "announces 2 data bytes"),
    ],
)
def test_short_frames_are_explained(raw, says):
    with pytest.raises(Dlt645Error, match=says):
        decode_frame(bytes.fromhex(raw))


@given(frames, st.sampled_from(Version))
def test_random_frames_decode_or_raise_codec_errors(frame, version):
    for decode in (decode_reply, decode_request):
        try:
            decode(frame, version)
        except Dlt645Error:
            pass


@pytest.mark.parametrize("row", ROWS[::7], ids=lambda r: f"{r.version.value}-{r.hex}")
@settings(max_examples=20, deadline=None)
@given(raw=st.binary(max_size=70))
def test_random_values_raise_only_codec_errors(row, raw):
    try:
        decode_value(row.di, raw, row.version)
    except Dlt645Error:
        pass


@given(st.lists(st.binary(max_size=40), max_size=10))
def test_connections_never_raise_on_noise(chunks):
    master, slave = Master(), Slave()
    master.send(ReadData("000000000001", 0x00010000))
    for chunk in chunks:
        master.receive_data(chunk)
        slave.receive_data(chunk)
        try:
            while master.next_event() is not NEED_DATA:
                pass
        except ProtocolError as exc:
            assert isinstance(exc, Dlt645Error)
        while slave.next_event() is not NEED_DATA:
            pass


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


def _frames_of(stream: StreamDecoder, capture: bytes, cuts: list[int]) -> list[Frame]:
    """Every frame ``stream`` yields from ``capture`` fed in pieces cut at ``cuts``, then EOF."""
    out: list[Frame] = []
    for chunk in _split(capture, cuts):
        stream.feed(chunk)
        out += list(stream)
    stream.feed_eof()
    return out + list(stream)


noise = st.binary(max_size=12).map(lambda b: b.replace(b"\x68", b"\x00"))


@settings(max_examples=150)
@given(
    st.lists(st.tuples(frames, st.integers(0, 4), noise), min_size=1, max_size=6),
    noise,
    st.lists(st.integers(0, 10_000), max_size=12),
)
def test_stream_recovers_every_frame_split_anywhere_with_noise(items, head, cuts):
    capture = head + b"".join(noise_ + encode_frame(f, p) for f, p, noise_ in items)
    stream = StreamDecoder()
    out = _frames_of(stream, capture, cuts)
    assert out == [f for f, _, _ in items]
    assert stream.frames == len(items)


@settings(max_examples=100)
@given(
    st.lists(st.tuples(frames, st.binary(max_size=12)), min_size=1, max_size=5),
    st.lists(st.integers(0, 10_000), max_size=8),
)
def test_stream_recovers_frames_after_noise_that_looks_like_a_start(items, cuts):
    # noise may hold 68H (a false start); every real frame must still come out, in order
    capture = b"".join(n + encode_frame(f, 0) for f, n in items)
    it = iter(_frames_of(StreamDecoder(), capture, cuts))
    assert all(any(f == g for g in it) for f, _ in items)


CAPTURE = [
    encode_frame(Frame("123456789012", 0x11, bytes.fromhex("00000100")), 4),
    encode_frame(Frame("123456789012", 0x91, bytes.fromhex("0000010056341200")), 2),
    encode_frame(Frame("000000000001", 0xD1, b"\x02"), 0),
]


def test_split_at_every_boundary_with_noise_and_truncation():
    truncated = CAPTURE[1][:-5]  # a frame cut short, then the bus carries on
    capture = b"\x00\x68\x16" + CAPTURE[0] + b"\xff" + truncated + CAPTURE[1] + b"\x68" + CAPTURE[2]
    expected = [decode_frame(c) for c in CAPTURE]
    for i in range(len(capture) + 1):
        stream = StreamDecoder()
        stream.feed(capture[:i])
        out = list(stream)
        stream.feed(capture[i:])
        stream.feed_eof()
        out += list(stream)
        assert out == expected, i
        assert stream.dropped_bytes > 0


def test_bad_checksum_is_counted_and_skipped():
    bad = bytearray(CAPTURE[0])
    bad[-2] ^= 0xFF
    stream = StreamDecoder()
    stream.feed(bytes(bad) + CAPTURE[1])
    assert list(stream) == [decode_frame(CAPTURE[1])]
    assert stream.bad_checksums == 1


def test_stray_start_with_long_length_does_not_hold_up_a_reply():
    stream = StreamDecoder()
    stream.feed(b"\x68" + bytes(6) + b"\x68\x91\xff" + CAPTURE[1])  # claims 255 data bytes
    assert list(stream) == [decode_frame(CAPTURE[1])]


def test_echoes_are_recognisable_and_skippable():
    stream = StreamDecoder(skip_requests=True)
    stream.feed(CAPTURE[0] + CAPTURE[1])
    assert list(stream) == [decode_frame(CAPTURE[1])]
    assert stream.echoes == 1
    plain = StreamDecoder()
    plain.feed(CAPTURE[0])
    frame = plain.next_frame()
    assert frame is not None and not frame.from_meter


@given(frames, st.integers(0, 4))
def test_fast_path_agrees_with_the_construct_declaration(frame, preamble):
    from protocols.dlt645.frame import ADD_33, FRAME_CHECKED, address_to_wire

    wire = encode_frame(frame, preamble)
    body = dict(
        start=b"\x68",
        address=address_to_wire(frame.address),
        start2=b"\x68",
        control=frame.control,
        length=len(frame.data),
        data=frame.data.translate(ADD_33),
    )
    assert FRAME_CHECKED.build({"body": {"value": body}}) == wire[preamble:]
    parsed = FRAME_CHECKED.parse(wire[preamble:])  # construct verifies the checksum itself
    assert parsed.body.value.address == address_to_wire(frame.address)
