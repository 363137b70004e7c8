"""The link layer: CRC, addresses, fragments, scrambling, the stream decoder, typed errors."""

from __future__ import annotations

import pytest

from protocols.dlt698 import (
    BROADCAST,
    WILDCARD,
    Dlt698EncodeError,
    Dlt698Error,
    Frame,
    ServerAddress,
    StreamDecoder,
    crc16,
    decode_frame,
    encode_frame,
    server_address,
)
from protocols.dlt698.frame import (
    AddressType,
    Fragment,
    FragmentType,
    control_byte,
    parse_frame,
)

GET_ADDRESS = bytes.fromhex("0501254001020000")


def test_crc_is_x25() -> None:
    # the catalogue check value of CRC-16/X-25 (RFC 1662 FCS-16): "123456789" → 906E
    assert crc16(b"123456789") == 0x906E
    assert crc16(b"") == 0x0000


def test_control_bits() -> None:
    assert control_byte(False, False) == 0x43  # client request
    assert control_byte(True, False) == 0xC3  # meter reply
    assert control_byte(True, True, 1) == 0x81  # meter LINK request
    assert control_byte(False, True, 1) == 0x01  # the client's LINK answer
    assert control_byte(True, True) == 0x83  # meter REPORT
    frame = decode_frame(encode_frame(Frame(0xC3, ServerAddress("000000000001"), b"\x85")))
    assert frame.from_server and not frame.server_started and frame.function == 3


def test_broadcast_and_wildcard_addresses() -> None:
    raw = encode_frame(Frame(0x43, BROADCAST, GET_ADDRESS))
    assert raw[4] == 0xC0 and raw[5] == 0xAA  # AF: broadcast, 1 byte; SA AAH
    assert decode_frame(raw).server == BROADCAST
    assert BROADCAST.matches("000000000001")
    assert WILDCARD.matches("123456789012")
    partial = ServerAddress("1234AAAAAAAA", AddressType.WILDCARD)
    assert partial.matches("123456789012") and not partial.matches("223456789012")
    assert not ServerAddress("123456789012").matches("123456789013")
    assert server_address(1) == ServerAddress("000000000001")
    assert server_address("1234 AAAA AAAA").kind is AddressType.WILDCARD


@pytest.mark.parametrize("bad", ["", "1", "12345", "GG0000000000", "00" * 17])
def test_bad_server_address(bad: str) -> None:
    with pytest.raises(Dlt698EncodeError):
        ServerAddress(bad)


def test_logical_address_round_trip() -> None:
    address = ServerAddress("123456", AddressType.GROUP, logical=3)
    frame = decode_frame(encode_frame(Frame(0x43, address, GET_ADDRESS, client=7)))
    assert frame.server == address and frame.client == 7


def test_fragment_header() -> None:
    fragment = Fragment(0x123, FragmentType.MIDDLE)
    raw = encode_frame(Frame(0xC3, ServerAddress("000000000001"), b"\x85\x01", fragment=fragment))
    frame = decode_frame(raw)
    assert frame.fragment == fragment and frame.apdu == b"\x85\x01"
    assert frame.control & 0x20
    with pytest.raises(Dlt698EncodeError):
        _ = Fragment(0x1000, FragmentType.FIRST).wire


def test_scrambled_user_data() -> None:
    frame = Frame(0x43 | 0x08, ServerAddress("000000000001"), GET_ADDRESS)
    raw = encode_frame(frame)
    assert GET_ADDRESS not in raw  # +33H on the wire
    assert decode_frame(raw) == frame


def test_preamble_and_lengths() -> None:
    frame = Frame(0x43, ServerAddress("000000000001"), GET_ADDRESS)
    raw = encode_frame(frame, preamble=4)
    assert raw.startswith(b"\xfe" * 4) and decode_frame(raw) == frame
    with pytest.raises(Dlt698EncodeError):
        encode_frame(frame, preamble=17)
    with pytest.raises(Dlt698EncodeError):
        encode_frame(Frame(0x43, ServerAddress("000000000001"), bytes(16400)))


def _good() -> bytes:
    return encode_frame(Frame(0x43, ServerAddress("000000000001"), GET_ADDRESS))


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: r[:5], "shorter"),
        (lambda r: b"\x69" + r[1:], "not a DL/T 698.45 frame"),
        (lambda r: r[:-1] + b"\x17", "not a DL/T 698.45 frame"),
        (lambda r: r[:12] + bytes([r[12] ^ 1]) + r[13:], "header check"),
        (lambda r: r[:-3] + bytes([r[-3] ^ 1]) + r[-2:], "frame check"),
        (lambda r: r + b"\x00", "after the end"),
        (lambda r: r[:2] + bytes([r[2] | 0x40]) + r[3:], "kilobyte"),
        (lambda r: r[:2] + bytes([r[2] | 0x80]) + r[3:], "reserved"),
        (lambda r: r[:-4] + r[-3:], "not a DL/T 698.45 frame"),
    ],
)
def test_malformed_frames_raise_typed_errors(mutate: object, message: str) -> None:
    with pytest.raises(Dlt698Error, match=message):
        decode_frame(mutate(_good()))  # type: ignore[operator]


def test_stream_hunts_through_noise_and_645_frames() -> None:
    good = _good()
    dlt645 = bytes.fromhex("FEFEFEFE68129078563412681104333334336816")
    stream = StreamDecoder()
    noise = b"\x68\xff\xff\x00\x13" + dlt645 + b"\x68\x05\x00"
    for i in range(0, len(noise + good), 3):  # arrive in small chunks
        stream.feed((noise + good)[i : i + 3])
    frames = list(stream)
    assert [f.apdu for f in frames] == [GET_ADDRESS]
    assert stream.dropped_bytes > 0


def test_stream_counts_bad_checksums_and_truncation() -> None:
    good = _good()
    bad = good[:-3] + bytes([good[-3] ^ 0xFF]) + good[-2:]
    stream = StreamDecoder()
    stream.feed(bad + good + good[:10])
    assert [f.apdu for f in stream] == [GET_ADDRESS]
    assert stream.bad_checksums == 1
    stream.feed_eof()
    assert stream.next_frame() is None and stream.truncated >= 1 and stream.buffered == 0


def test_stream_does_not_wait_behind_a_false_start() -> None:
    good = _good()
    stream = StreamDecoder()
    stream.feed(b"\x68\x00\x0f\x43\x05" + good)  # announces 3842 bytes, HCS fails
    assert stream.next_frame() is not None


def test_parse_frame_checked_skips_crc() -> None:
    good = bytearray(_good())
    good[-3] ^= 1
    with pytest.raises(Dlt698Error):
        parse_frame(bytes(good))
    assert parse_frame(bytes(good), checked=True).apdu == GET_ADDRESS
