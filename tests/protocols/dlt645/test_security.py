"""Secured frames (03H authentication, 1CH level 98, 14H levels 98/99): golden frames and errors.

No public capture of a real meter's secured exchange with its values exists (the ciphertexts are
the utility's), so the golden frames are built by hand, byte by byte, from the layouts in the
public sources named beside each (see docs/dlt645.md §Security), with made-up field values; the
checksums were added by hand.  They pin the layout, the field order and the byte reversal.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.dlt645 import (
    AbnormalReply,
    Authenticate,
    Authenticated,
    Dlt645EncodeError,
    Dlt645ValueError,
    Frame,
    Function,
    InvalidateAuthentication,
    Master,
    OtherRequest,
    ReadBack,
    ReadBackData,
    RemoteControl,
    SecuredControl,
    SecuredWrite,
    SecurityReply,
    Slave,
    Version,
    decode_frame,
    decode_reply,
    decode_request,
    encode_frame,
    encode_reply,
    encode_request,
    factor_of,
    readback_identifier,
    security_reasons,
    security_word,
)
from protocols.dlt645.messages import ControlAction


def hx(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


METER = "123456789012"
C1, R1 = hx("0102030405060708"), hx("1112131415161718")
SEALED = bytes(range(0x20, 0x34))

# Layout: LYTest.WPF MeterProtocolAdapter.IdentityAuthentication (github YuChaoYuan1/LYTEST.WPF,
# LYTest.ViewModel/CheckController/MeterProtocolAdapter.cs): DI FF 00 00 07, 4-byte operator,
# ciphertext 1, random number 1, factor, each reversed (StringToByte); L = 32 as in the meter
# firmware table Far_645_Frame_Flag_0x03_List (FAR_DEAL_CTRL_0X33, 070000FF length 32).
AUTH_REQUEST = (
    "68 12 90 78 56 34 12 68 03 20 32 33 33 3A 33 33 33 33 3B 3A 39 38 37 36 35 34"
    " 4B 4A 49 48 47 46 45 44 45 C3 AB 89 67 45 33 33 8D 16"
)
# Same sources: the reply is DI + random number 2 (4) + ESAM serial (8), each reversed (L = 16).
AUTH_REPLY = "68 12 90 78 56 34 12 68 83 10 32 33 33 3A 07 F6 E5 D4 AA 99 88 77 66 55 44 33 15 16"
# Meter firmware FAR_DEAL_CTRL_0X33 (Esam_Remote_Auth): C3 + 2-byte SERR, bit 3 "identity
# authentication failed".
AUTH_REFUSED = "68 12 90 78 56 34 12 68 C3 02 3B 33 B9 16"
# Firmware table: 070002FF (authentication invalidate) length 8 = DI + operator.
INVALIDATE = "68 12 90 78 56 34 12 68 03 08 32 35 33 3A 33 33 33 33 31 16"
# Firmware table: 070001FF length 14 = DI + operator + minutes (2, BCD) + MAC (4), written to the
# ESAM reversed (Far_Deal_070001FF → Far_Write_Esam): 10 minutes, MAC CAFEBABE.
VALIDITY = "68 12 90 78 56 34 12 68 03 0E 32 34 33 3A 33 33 33 33 43 33 F1 ED 31 FD B8 16"
# LYTest.WPF UserControl + CDLT6452007.UpdateRemoteEncryptionCommand: 1CH = 98 + password
# (3 bytes) + operator (4) + the 20-byte encryption-machine output reversed as one block.
CONTROL = (
    "68 12 90 78 56 34 12 68 1C 1C CB 33 33 33 33 33 33 33 66 65 64 63 62 61 60 5F 5E 5D"
    " 5C 5B 5A 59 58 57 56 55 54 53 28 16"
)
# LYTest.WPF CDLT6452007.WriteData (class 1 → level 99) + MeterProtocolAdapter (value then the
# 4-byte MAC, each reversed): first-class parameter 04000108 (tariff switch time) + MAC CAFEBABE.
WRITE_99 = (
    "68 12 90 78 56 34 12 68 14 15 3B 34 33 37 CC 33 33 33 33 33 33 33 33 33 43 34 59"
    " F1 ED 31 FD FB 16"
)


# LYTest.WPF FK_Encryption_RecoverKey.cs: the 078001FF read-back identifier is directory (2) +
# file (2) + start (2) + length (2), e.g. DF01001A0000005A (the chip issue file); firmware
# FAR_DEAL_CTRL_0X33 (table entry 078001FF, length 16; Far_Deal_078001FF): the reply is the
# identifier as sent, the data reversed, then the 4-byte MAC reversed.  Data 01020304, MAC CAFEBABE.
READBACK = "68 12 90 78 56 34 12 68 03 10 32 34 B3 3A 33 33 33 33 8D 33 33 33 4D 33 34 12 A4 16"
READBACK_REPLY = (
    "68 12 90 78 56 34 12 68 83 14 32 34 B3 3A 8D 33 33 33 4D 33 34 12 37 36 35 34"
    " F1 ED 31 FD 3E 16"
)


def test_data_read_back_golden():
    identifier = readback_identifier(0x001A, 0, 0x5A)
    assert identifier == hx("DF01001A0000005A")
    request = ReadBack(METER, identifier)
    assert encode_frame(encode_request(request), preamble=0) == hx(READBACK)
    assert decode_request(decode_frame(hx(READBACK))) == request
    reply = decode_reply(decode_frame(hx(READBACK_REPLY)))
    assert reply == ReadBackData(METER, identifier, hx("01020304"), hx("CAFEBABE"), Version.V2007)
    assert encode_frame(encode_reply(reply), preamble=0) == hx(READBACK_REPLY)


def test_data_read_back_errors():
    with pytest.raises(Dlt645EncodeError):
        readback_identifier(8, 0, 0)  # nothing to read
    with pytest.raises(Dlt645EncodeError):
        encode_request(ReadBack(METER, b"short"))
    short = Frame(METER, 0x83, hx("FF018007") + bytes(8) + hx("CAFEBABE"))  # a MAC, no data
    with pytest.raises(Dlt645ValueError):
        decode_reply(short)


def test_authentication_request_golden():
    request = Authenticate(METER, C1, R1, factor_of(METER))
    frame = encode_request(request)
    assert encode_frame(frame, preamble=0) == hx(AUTH_REQUEST)
    assert decode_request(decode_frame(hx(AUTH_REQUEST))) == request
    assert factor_of(METER) == hx("0000123456789012")


def test_authentication_reply_golden():
    reply = decode_reply(decode_frame(hx(AUTH_REPLY)))
    assert reply == Authenticated(METER, hx("A1B2C3D4"), hx("0011223344556677"), Version.V2007)
    assert encode_frame(encode_reply(reply), preamble=0) == hx(AUTH_REPLY)


def test_security_error_word_golden():
    reply = decode_reply(decode_frame(hx(AUTH_REFUSED)))
    assert isinstance(reply, AbnormalReply)
    assert reply.function is Function.SECURITY
    assert reply.reasons == ("authentication_failed",)
    assert encode_frame(encode_reply(reply), preamble=0) == hx(AUTH_REFUSED)


def test_security_error_word_names_every_bit_and_round_trips():
    word = security_word(("esam_verification_failed", "other_error", "bit15"))
    assert word == 0x8005
    assert security_reasons(word) == ("other_error", "esam_verification_failed", "bit15")


def test_invalidate_golden():
    request = InvalidateAuthentication(METER)
    assert encode_frame(encode_request(request), preamble=0) == hx(INVALIDATE)
    assert decode_request(decode_frame(hx(INVALIDATE))) == request
    # the reply carries customer number, balance, purchases and key info after the DI
    data = hx("FF020007") + bytes(18)
    reply = decode_reply(Frame(METER, 0x83, data))
    assert reply == SecurityReply(METER, 0x070002FF, bytes(18), Version.V2007)


def test_authentication_validity_golden():
    from protocols.dlt645 import SetAuthenticationValidity

    request = SetAuthenticationValidity(METER, 10, hx("CAFEBABE"))
    assert encode_frame(encode_request(request), preamble=0) == hx(VALIDITY)
    assert decode_request(decode_frame(hx(VALIDITY))) == request
    with pytest.raises(Dlt645EncodeError):
        encode_request(SetAuthenticationValidity(METER, 0, hx("CAFEBABE")))
    not_bcd = Frame(METER, 0x03, hx("FF010007 00000000 0A00 CAFEBABE"))
    assert isinstance(decode_request(not_bcd), OtherRequest)


def test_secured_control_golden():
    request = SecuredControl(METER, SEALED)
    assert encode_frame(encode_request(request), preamble=0) == hx(CONTROL)
    assert decode_request(decode_frame(hx(CONTROL))) == request


def test_level_99_write_golden():
    request = SecuredWrite(METER, 0x04000108, hx("0000100126") + hx("CAFEBABE"))
    assert encode_frame(encode_request(request), preamble=0) == hx(WRITE_99)
    assert decode_request(decode_frame(hx(WRITE_99))) == request


def test_level_98_write_round_trips_reversed():
    payload = bytes(range(1, 21))
    request = SecuredWrite(METER, 0x04000102, payload, "98000000")
    frame = encode_request(request)
    assert frame.data[12:] == payload[::-1]
    assert decode_request(frame) == request


def test_plaintext_control_still_decodes_as_plaintext():
    from datetime import datetime

    plain = RemoteControl(METER, ControlAction.TRIP, valid_until=datetime(2026, 1, 1))
    decoded = decode_request(encode_request(plain))
    assert isinstance(decoded, RemoteControl) and decoded.action is ControlAction.TRIP


@pytest.mark.parametrize(
    "request_",
    [
        Authenticate(METER, C1[:7], R1, factor_of(METER)),
        Authenticate(METER, C1, R1, factor_of(METER), operator="xyz"),
        SecuredControl(METER, SEALED[:19]),
        SecuredControl(METER, SEALED, password="02000000"),
        SecuredWrite(METER, 0x04000102, b"\x01\x02\x03", "99000000"),
        SecuredWrite(METER, 0x04000102, bytes(8), "02000000"),
    ],
)
def test_malformed_secured_requests_are_typed_errors(request_):
    with pytest.raises(Dlt645EncodeError):
        encode_request(request_)


def test_secured_requests_do_not_exist_in_1997():
    with pytest.raises(Dlt645EncodeError):
        encode_request(InvalidateAuthentication(METER), Version.V1997)


@pytest.mark.parametrize(
    "frame",
    [
        Frame(METER, 0x03, hx("FF000007") + bytes(20)),  # short authentication
        Frame(METER, 0x03, hx("FF090007") + bytes(4)),  # unknown security identifier
        Frame(METER, 0x1C, hx("97000000") + bytes(24)),  # level 97 is no secured level
    ],
)
def test_malformed_secured_frames_decode_as_other_requests(frame):
    assert isinstance(decode_request(frame), OtherRequest)


def test_short_authentication_reply_is_a_value_error():
    from protocols.dlt645 import Dlt645ValueError

    with pytest.raises(Dlt645ValueError):
        decode_reply(Frame(METER, 0x83, hx("FF000007") + bytes(5)))


def test_master_and_slave_exchange_an_authentication():
    master, slave = Master(preamble=0), Slave(preamble=0)
    request = Authenticate(METER, C1, R1, factor_of(METER))
    slave.receive_data(master.send(request))
    assert slave.next_event() == request
    master.receive_data(slave.send(Authenticated(METER, hx("01020304"), bytes(8))))
    assert master.next_event() == Authenticated(METER, hx("01020304"), bytes(8), Version.V2007)
    master.send(request)
    refused = AbnormalReply(METER, Function.SECURITY, 0x0004, ("esam_verification_failed",))
    master.receive_data(slave.send(refused))
    event = master.next_event()
    assert isinstance(event, AbnormalReply) and event.reasons == ("esam_verification_failed",)


def test_parameter_classes():
    from protocols.dlt645.security import first_class

    assert first_class(0x04000108) and first_class(0x04050101) and first_class(0x0400040E)
    assert not first_class(0x04000101) and not first_class(0x04000102)


ADDRESSES = st.text("0123456789", min_size=12, max_size=12)
OPERATORS = st.binary(min_size=4, max_size=4).map(lambda b: b.hex().upper())
EIGHT = st.binary(min_size=8, max_size=8)


@given(ADDRESSES, EIGHT, EIGHT, EIGHT, OPERATORS)
def test_authentication_round_trips(address, c1, r1, factor, operator):
    request = Authenticate(address, c1, r1, factor, operator)
    assert decode_request(decode_frame(encode_frame(encode_request(request)))) == request


@given(ADDRESSES, st.binary(min_size=20, max_size=20), OPERATORS)
def test_secured_control_round_trips(address, sealed, operator):
    request = SecuredControl(address, sealed, "98123456", operator)
    assert decode_request(decode_frame(encode_frame(encode_request(request)))) == request


@given(
    ADDRESSES,
    st.integers(0, 0xFFFFFFFF),
    st.binary(min_size=5, max_size=180),
    st.sampled_from(["98000000", "99000000", "99654321"]),
)
def test_secured_write_round_trips(address, di, payload, password):
    request = SecuredWrite(address, di, payload, password)
    assert decode_request(decode_frame(encode_frame(encode_request(request)))) == request
