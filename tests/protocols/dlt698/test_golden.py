"""Golden frames from the standard's examples and public documents (source beside each vector).

Each vector is checked three ways: the frame parses (CRCs included) to the fields the source
states, re-encoding those fields gives the same bytes, and the APDU decodes to the typed
message the source describes (and re-encodes to the same bytes).  "index id N" names the file in
the public code index the vector was found in (the repository is named where the index gave it).
"""

from __future__ import annotations

from datetime import datetime

import pytest

from protocols.dlt698 import (
    OAD,
    ConnectRequest,
    DataType,
    GetRequestNormal,
    GetRequestNormalList,
    GetRequestRecord,
    GetResponseNormal,
    GetResponseNormalList,
    LinkRequest,
    LinkResponse,
    LinkType,
    SecurityRequest,
    Selector1,
    SetRequestNormal,
    Verification,
    decode_apdu,
    decode_frame,
    encode_apdu,
    encode_frame,
)
from protocols.dlt698.frame import FRAME_LAYOUT, AddressType


def hx(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


# (name, wire hex, control, server address, address type, client address, APDU type, source)
FRAMES = [
    (
        "read-address-wildcard",
        "68 17 00 43 45 AA AA AA AA AA AA 00 5B 4F 05 01 25 40 01 02 00 00 0A 92 16",
        0x43,
        "AAAAAAAAAAAA",
        AddressType.WILDCARD,
        0x00,
        GetRequestNormal,
        "DL/T 698.45 (2021-09-10 text) annex H.3, quoted in a public C library (index id "
        "44257402759)",
    ),
    (
        "read-address-reply",
        "68 21 00 C3 05 33 09 20 39 00 00 00 4A 55 85 01 25 40 01 02 00 01 09 06 00 00 39 20 "
        "09 33 00 00 B2 D8 16",
        0xC3,
        "000039200933",
        AddressType.SINGLE,
        0x00,
        GetResponseNormal,
        "annex H.3 reply, same source",
    ),
    (
        "read-address-tool",
        "68 17 00 43 45 AA AA AA AA AA AA 10 DA 5F 05 01 03 40 01 02 00 00 90 0F 16",
        0x43,
        "AAAAAAAAAAAA",
        AddressType.WILDCARD,
        0x10,
        GetRequestNormal,
        "public PyQt field tool, 'getadd' (index id 21217602709)",
    ),
    (
        "read-address-client-a1",
        "68 17 00 43 45 AA AA AA AA AA AA a1 D8 FB 05 01 00 40 01 02 00 00 ED 03 16",
        0x43,
        "AAAAAAAAAAAA",
        AddressType.WILDCARD,
        0xA1,
        GetRequestNormal,
        "public serial test script (index id 21219391659)",
    ),
    (
        "read-address-peer-docs",
        "68 21 00 C3 05 00 00 00 00 00 00 00 1D DB 85 01 00 40 01 02 00 01 09 06 12 34 56 78 "
        "90 12 00 00 DB 07 16",
        0xC3,
        "000000000000",
        AddressType.SINGLE,
        0x00,
        GetResponseNormal,
        "dlt698 C++ library docs, 设备信息读取 (index id 70374867785)",
    ),
    (
        "rated-voltage-visible-string",
        "68 1F 00 C3 05 00 00 00 00 00 00 00 0F 01 85 01 00 41 04 02 00 01 0A 04 32 32 30 56 "
        "00 00 F7 38 16",
        0xC3,
        "000000000000",
        AddressType.SINGLE,
        0x00,
        GetResponseNormal,
        "dlt698 C++ library docs, 设备信息读取 (index id 70374867785)",
    ),
    (
        "logical-address-2-seven-byte-sa",
        "68 18 00 43 26 01 30 01 00 00 00 00 A1 83 EE 05 01 02 20 00 02 01 00 6B AF 16",
        0x43,
        "00000000013001",
        AddressType.SINGLE,
        0xA1,
        GetRequestNormal,
        "public JavaScript 698 parser, input example (search result, parseHex_698)",
    ),
    (
        "reply-with-acd",
        "68 21 00 C3 05 10 00 00 00 00 00 10 55 7E 85 01 41 40 01 02 00 01 09 06 00 00 00 00 "
        "00 10 00 00 DD BA 16",
        0xC3,
        "000000000010",
        AddressType.SINGLE,
        0x10,
        GetResponseNormal,
        "public test vectors of a CCO tool, 虚拟表地址响应 (index id 59681537638)",
    ),
    (
        "set-request",
        "68 1b 00 43 05 01 00 00 00 00 00 10 d9 14 06 01 04 FF F0 03 00 09 02 02 29 00 ef 35 16",
        0x43,
        "000000000001",
        AddressType.SINGLE,
        0x10,
        SetRequestNormal,
        "same CCO tool vectors, 射频参数配置CCO请求 (index id 59681537638)",
    ),
    (
        "connect-public",
        "68 38 00 43 05 01 00 00 00 00 00 10 E0 08 02 00 00 10 FF FF FF FF FF FF FF FF FF FF FF "
        "FF FF FF FF FF FF FF FF FF FF FF FF FF 04 00 04 00 01 04 00 00 00 00 64 00 00 DB 79 16",
        0x43,
        "000000000001",
        AddressType.SINGLE,
        0x10,
        ConnectRequest,
        "public MFC test harness, strConnect (index id 21137407919); the same APDU is in several "
        "C#/Java tools (index ids 15778616003, 38807448613)",
    ),
    (
        "link-login",
        "68 1E 00 81 05 01 00 00 00 00 00 00 D2 B6 01 00 00 01 2C 07 E6 02 17 03 08 06 38 03 "
        "22 1C BC 16",
        0x81,
        "000000000001",
        AddressType.SINGLE,
        0x00,
        LinkRequest,
        "public Go terminal library, Ptl698_45BuildPacket comment 登录 (index id 49116717447)",
    ),
    (
        "link-confirm",
        "68 30 00 01 05 01 00 00 00 00 00 00 52 D9 81 00 00 07 E6 02 17 03 08 05 02 02 F9 07 "
        "E6 02 17 03 08 06 09 00 32 07 E6 02 17 03 08 06 09 00 32 F0 E7 16",
        0x01,
        "000000000001",
        AddressType.SINGLE,
        0x00,
        LinkResponse,
        "same Go library comment, 确认 (index id 49116717447)",
    ),
    (
        "link-heartbeat",
        "68 1E 00 81 05 05 00 00 00 00 00 00 A4 D9 01 01 01 01 2C 07 E3 02 15 04 13 2C 12 00 "
        "00 41 66 16",
        0x81,
        "000000000005",
        AddressType.SINGLE,
        0x00,
        LinkRequest,
        "public terminal simulator (C), 心跳 comment (index id 42983327990)",
    ),
    (
        "link-login-emqx",
        "68 1E 00 81 05 84 00 00 00 00 00 00 6C C0 01 00 00 00 3C 07 E4 08 06 04 10 2C 0E 00 "
        "00 7A 06 16",
        0x81,
        "000000000084",
        AddressType.SINGLE,
        0x00,
        LinkRequest,
        "emqx-tcp connector README, 预连接 with its decoded JSON (index id 43080178242)",
    ),
    (
        "daily-freeze-record",
        "68 34 00 43 05 24 11 11 11 11 11 00 3B 1C 05 03 00 50 04 02 00 01 20 21 02 00 1C 07 "
        "E2 0C 1B 00 00 00 03 00 20 21 02 00 00 00 10 02 00 00 00 20 02 00 00 76 55 16",
        0x43,
        "111111111124",
        AddressType.SINGLE,
        0x00,
        GetRequestRecord,
        "public Python 698 test tool, module comment (index id 45340582730)",
    ),
    (
        "daily-freeze-record-secured-rn",
        "68 49 00 43 05 24 11 11 11 11 11 00 9f f5 10 00 25 05 03 00 50 04 02 00 01 20 21 02 "
        "00 1c 07 e2 0c 1b 00 00 00 03 00 20 21 02 00 00 00 10 02 00 00 00 20 02 00 00 01 10 "
        "2b b5 ce 97 39 21 fc 9c d8 37 27 82 2e 8d e3 b5 d7 9e 16",
        0x43,
        "111111111124",
        AddressType.SINGLE,
        0x00,
        SecurityRequest,
        "same tool: the record read as plaintext + RN (index id 45340582730)",
    ),
    (
        "security-sid-mac",
        "68 2B 00 43 05 01 00 29 01 16 20 0A FC 65 10 00 08 05 01 01 40 01 02 00 00 00 85 01 "
        "02 03 06 12 34 56 78 90 12 04 12 34 56 78 31 CC 16",
        0x43,
        "201601290001",
        AddressType.SINGLE,
        0x0A,
        SecurityRequest,
        "public MFC test harness, strMACData (index id 21137407919)",
    ),
]


def wire_of(name: str) -> str:
    return next(f[1] for f in FRAMES if f[0] == name)


@pytest.mark.parametrize(
    ("name", "wire", "control", "address", "kind", "client", "apdu_type", "source"),
    FRAMES,
    ids=[f[0] for f in FRAMES],
)
def test_golden_frame(
    name: str,
    wire: str,
    control: int,
    address: str,
    kind: AddressType,
    client: int,
    apdu_type: type,
    source: str,
) -> None:
    raw = hx(wire)
    frame = decode_frame(raw)
    assert (frame.control, frame.server.address, frame.server.kind, frame.client) == (
        control,
        address,
        kind,
        client,
    )
    assert encode_frame(frame) == raw
    parsed = FRAME_LAYOUT.parse(raw)  # the construct declaration agrees with the hot path
    assert parsed.header.control == control and parsed.user_data == frame.apdu
    apdu = decode_apdu(frame.apdu)
    assert isinstance(apdu, apdu_type)
    assert encode_apdu(apdu) == frame.apdu


def test_annex_h3_address_reply_value() -> None:
    """The meter answers 4001 with its address in nameplate order, the SA reversed on the wire."""
    frame = decode_frame(hx(wire_of("read-address-reply")))
    reply = decode_apdu(frame.apdu)
    assert isinstance(reply, GetResponseNormal)
    assert reply.piid == 0x25 and reply.result.oad == OAD(0x4001, 2)
    assert reply.result.data is not None
    assert reply.result.data.type is DataType.OCTET_STRING
    assert reply.result.data.value.hex() == frame.server.address.lower() == "000039200933"


def test_public_connect_fields() -> None:
    connect = decode_apdu(decode_frame(hx(wire_of("connect-public"))).apdu)
    assert isinstance(connect, ConnectRequest)
    assert connect.version == 0x0010 and connect.mechanism.kind == 0
    assert (connect.send_max, connect.receive_max, connect.window, connect.apdu_max) == (
        1024,
        1024,
        1,
        1024,
    )
    assert connect.timeout == 100
    assert ConnectRequest().version == connect.version  # Taiqu proposes the same version


def test_acd_bit_of_piid() -> None:
    reply = decode_apdu(decode_frame(hx(wire_of("reply-with-acd"))).apdu)
    assert isinstance(reply, GetResponseNormal)
    assert reply.piid == 0x41 and reply.piid & 0x40  # the meter has something to report


def test_emqx_login_fields() -> None:
    """The emqx-tcp README shows the decoded login: heartbeat 60 s, 2020-08-06 16:44:14."""
    link = decode_apdu(decode_frame(hx(wire_of("link-login-emqx"))).apdu)
    assert isinstance(link, LinkRequest)
    assert link.kind is LinkType.LOGIN and link.heartbeat == 60
    assert link.time.to_datetime() == datetime(2020, 8, 6, 16, 44, 14)
    assert link.time.weekday == 4


def test_daily_freeze_selector() -> None:
    request = decode_apdu(decode_frame(hx(wire_of("daily-freeze-record"))).apdu)
    assert isinstance(request, GetRequestRecord)
    assert request.oad == OAD(0x5004, 2)
    assert isinstance(request.rsd, Selector1) and request.rsd.oad == OAD(0x2021, 2)
    assert request.rsd.value.value.to_datetime() == datetime(2018, 12, 27)
    assert request.columns == (OAD(0x2021, 2), OAD(0x0010, 2), OAD(0x0020, 2))


def test_secured_plaintext_rn() -> None:
    wrapped = decode_apdu(decode_frame(hx(wire_of("daily-freeze-record-secured-rn"))).apdu)
    assert isinstance(wrapped, SecurityRequest)
    assert wrapped.verification is Verification.RN and len(wrapped.rn) == 16
    assert not wrapped.encrypted
    assert isinstance(decode_apdu(wrapped.apdu), GetRequestRecord)


def test_sid_mac_fields() -> None:
    wrapped = decode_apdu(decode_frame(hx(wire_of("security-sid-mac"))).apdu)
    assert isinstance(wrapped, SecurityRequest)
    assert wrapped.verification is Verification.SID_MAC
    assert (wrapped.sid, wrapped.sid_extra, wrapped.mac) == (
        0x85010203,
        hx("12 34 56 78 90 12"),
        hx("12 34 56 78"),
    )


# APDU-only vectors (no frame given in the source)
APDUS = [
    (
        "85 02 02 02 20 00 02 00 01 01 03 12 09 6D 12 09 6D 12 09 6D 20 01 02 00 01 01 03 05 "
        "00 00 03 E8 05 00 00 03 E8 05 00 00 03 E8 00 00",
        GetResponseNormalList,
        "public Java 698 tool, 读 多OAD 响应 comment (index id 5203184301)",
    ),
    (
        "05 02 02 02 20 00 02 00 20 01 02 00 00",
        GetRequestNormalList,
        "same Java tool, 读 多OAD (index id 5203184301)",
    ),
    (
        "05 03 04 50 04 02 00 01 20 21 02 00 1C 07 E0 01 14 00 00 00 01 00 00 10 02 00 00",
        GetRequestRecord,
        "dlt698 C++ library test, record_at(daily_freeze) (index id 70819646321)",
    ),
]


@pytest.mark.parametrize(("wire", "kind", "source"), APDUS)
def test_golden_apdu(wire: str, kind: type, source: str) -> None:
    raw = hx(wire)
    apdu = decode_apdu(raw)
    assert isinstance(apdu, kind)
    assert encode_apdu(apdu) == raw


def test_voltage_current_list_values() -> None:
    """The Java tool's reply: 241.3 V and 1.000 A on three phases (scalers -1 and -3)."""
    from decimal import Decimal

    from protocols.dlt698 import decode_value

    reply = decode_apdu(hx(APDUS[0][0]))
    assert isinstance(reply, GetResponseNormalList)
    values: dict[str, object] = {}
    for result in reply.results:
        assert result.data is not None
        values.update(decode_value(result.oad, result.data))
    assert values == {
        "voltage.a": Decimal("241.3"),
        "voltage.b": Decimal("241.3"),
        "voltage.c": Decimal("241.3"),
        "current.a": Decimal("1.000"),
        "current.b": Decimal("1.000"),
        "current.c": Decimal("1.000"),
    }


def test_client_link_answer_reproduces_the_public_confirm() -> None:
    """Taiqu's client answers a meter's login with exactly the frame the public library sends."""
    from protocols.dlt698 import Client

    confirm = hx(wire_of("link-confirm"))
    answer = decode_apdu(decode_frame(confirm).apdu)
    assert isinstance(answer, LinkResponse)
    login = decode_apdu(decode_frame(hx(wire_of("link-login"))).apdu)
    assert isinstance(login, LinkRequest) and login.heartbeat == 300
    assert answer.result == 0 and answer.request_time.year == 2022
    assert Client(preamble=0).link_response("000000000001", answer) == confirm
