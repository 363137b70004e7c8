"""Client and Server wired together with no port (h11 ConnectionPair style)."""

from __future__ import annotations

import pytest

from protocols.dlt698 import (
    NEED_DATA,
    OAD,
    OMD,
    Client,
    Data,
    DataType,
    Dlt698EncodeError,
    Dlt698SecurityError,
    Dlt698ValueError,
    ErrorResponse,
    GetRequestNormal,
    GetRequestRecord,
    GetResponseNormal,
    GetResponseRecord,
    Incoming,
    LabMac,
    LinkRequest,
    LinkType,
    ReportNotification,
    ResultNormal,
    ResultRecord,
    SecurityResponse,
    Selector9,
    Server,
    SetRequestNormal,
    SetResponseNormal,
    encode_apdu,
    encode_frame,
)
from protocols.dlt698.datetimes import DateTime, DateTimeS
from protocols.dlt698.frame import BROADCAST, Frame, ServerAddress

METER = "000000000001"
ENERGY = OAD(0x0010, 2)
T = DataType
VALUE = Data(T.ARRAY, tuple(Data(T.DOUBLE_LONG_UNSIGNED, n) for n in (500, 100, 200, 100, 100)))


def serve(server: Server, raw: bytes) -> Incoming:
    server.receive_data(raw)
    incoming = server.next_event()
    assert isinstance(incoming, Incoming)
    return incoming


def answer(incoming: Incoming) -> GetResponseNormal:
    assert isinstance(incoming.request, GetRequestNormal)
    return GetResponseNormal(incoming.request.piid, ResultNormal(incoming.request.oad, VALUE))


def test_get_round_trip() -> None:
    client, server = Client(), Server()
    incoming = serve(server, client.get(METER, ENERGY))
    assert incoming.server == ServerAddress(METER) and incoming.request is not None
    client.receive_data(server.respond(METER, incoming, answer(incoming)))
    response = client.next_event()
    assert isinstance(response, GetResponseNormal) and response.result.data == VALUE
    assert not client.awaiting_reply and client.next_event() is NEED_DATA


def test_client_skips_echo_other_meter_and_stale_piid() -> None:
    client, server = Client(), Server()
    first = client.get(METER, ENERGY)
    old = serve(server, first)
    stale = server.respond(METER, old, answer(old))
    request = client.get(METER, ENERGY)
    incoming = serve(server, request)
    other = server.respond("000000000002", incoming, answer(incoming))
    client.receive_data(request + stale + other)  # echo, late answer, another meter
    assert client.next_event() is NEED_DATA
    assert client.echoes == 1 and client.ignored == 2
    client.receive_data(server.respond(METER, incoming, answer(incoming)))
    assert isinstance(client.next_event(), GetResponseNormal)


def test_broadcast_expects_nothing() -> None:
    client = Client()
    raw = client.set(BROADCAST, OAD(0x4000, 2), Data(T.NULL))
    assert not client.awaiting_reply and raw[4 + 4] == 0xC0  # after FE×4, 68, L, L, C


def test_bad_apdu_from_meter_is_a_value_error_and_the_client_recovers() -> None:
    client = Client()
    client.get(METER, ENERGY)
    garbage = Frame(0xC3, ServerAddress(METER), b"\x85\x01\x01\x00\x10\x02\x00\x01\x63")
    client.receive_data(encode_frame(garbage))
    with pytest.raises(Dlt698ValueError) as caught:
        client.next_event()
    assert caught.value.frame is not None and not client.awaiting_reply


def test_error_response_is_an_event() -> None:
    client, server = Client(), Server()
    raw = client.get(METER, ENERGY)
    incoming = serve(server, raw)
    client.receive_data(server.respond(METER, incoming, ErrorResponse(0, 2)))
    assert client.next_event() == ErrorResponse(0, 2)


def test_server_reports_undecodable_request() -> None:
    server = Server()
    raw = encode_frame(Frame(0x43, ServerAddress(METER), b"\x05\x09\x01"))
    incoming = serve(server, raw)
    assert incoming.request is None and "not supported" in incoming.error


def test_fragmented_record_reassembles_with_confirms() -> None:
    client, server = Client(), Server(fragment_size=40)
    columns = (OAD(0x2021, 2), ENERGY)
    rows = tuple((Data(T.DATE_TIME_S, DateTimeS(2026, 12, d)), VALUE) for d in range(1, 8))
    incoming = serve(server, client.get_record(METER, OAD(0x5004, 2), Selector9(1), columns))
    assert isinstance(incoming.request, GetRequestRecord)
    response = GetResponseRecord(incoming.request.piid, ResultRecord(OAD(0x5004, 2), columns, rows))
    wire = server.respond(METER, incoming, response)
    frames = 1
    while True:
        client.receive_data(wire)
        event = client.next_event()
        if event is not NEED_DATA:
            break
        confirm = client.data_to_send()
        assert confirm, "each fragment but the last is confirmed"
        server.receive_data(confirm)
        assert server.next_event() is NEED_DATA
        wire = server.data_to_send()
        frames += 1
    assert frames > 2 and event == response


def test_secured_read_verifies_the_meter_mac() -> None:
    lab = LabMac(b"k" * 16, random=lambda n: bytes(range(n)))
    client, server = Client(security=lab), Server(security=lab)
    raw = client.get(METER, ENERGY, secured=True)
    incoming = serve(server, raw)
    assert incoming.secured is not None and isinstance(incoming.request, GetRequestNormal)
    reply = server.respond(METER, incoming, answer(incoming))
    client.receive_data(reply)
    response = client.next_event()
    assert isinstance(response, GetResponseNormal) and response.result.data == VALUE
    # a meter (or a man in the middle) with the wrong key
    client.get(METER, ENERGY, secured=True)
    forged = Server(security=LabMac(b"x" * 16)).respond(METER, incoming, answer(incoming))
    client.receive_data(forged)
    with pytest.raises(Dlt698SecurityError):
        client.next_event()


def test_secured_set_with_bad_mac_is_refused_by_the_meter() -> None:
    client = Client(security=LabMac(b"wrong-key-wrong-key"))
    server = Server(security=LabMac(b"k" * 16))
    raw = client.set(METER, OAD(0x4000, 2), Data(T.NULL), secured=True)
    incoming = serve(server, raw)
    assert incoming.request is None and "MAC" in incoming.error
    client.receive_data(server.respond(METER, incoming, ErrorResponse(0, 255)))
    refusal = client.next_event()  # the meter's refusal is an answer, not an exception
    assert isinstance(refusal, SecurityResponse) and refusal.dar == 23


def test_secured_request_needs_a_service() -> None:
    with pytest.raises(Dlt698EncodeError):
        Client().get(METER, ENERGY, secured=True)


def test_meter_report_and_link_are_events() -> None:
    client, server = Client(), Server()
    report = ReportNotification(3, (ResultNormal(OAD(0x3011, 2), Data(T.NULL)),))
    login = LinkRequest(1, LinkType.LOGIN, 60, DateTime(2026, 12, 6, 0, 9, 0, 0))
    client.receive_data(server.report(METER, report) + server.report(METER, login))
    assert client.next_event() == report
    assert client.next_event() == login
    ack = client.report_response(METER, report)
    assert ack[4 + 3] & 0x40 == 0  # PRM 0: the answer to a meter-started exchange
    server.receive_data(ack)
    assert server.next_event() is NEED_DATA and server.ignored == 1


def test_set_and_action_round_trip() -> None:
    client, server = Client(), Server()
    incoming = serve(server, client.set(METER, OAD(0x4000, 2), Data(T.NULL)))
    assert isinstance(incoming.request, SetRequestNormal)
    client.receive_data(
        server.respond(METER, incoming, SetResponseNormal(incoming.request.piid, OAD(0x4000, 2)))
    )
    assert isinstance(client.next_event(), SetResponseNormal)
    raw = client.action(METER, OMD(0x8000, 129), Data(T.NULL))
    assert encode_apdu(serve(server, raw).request)[:2] == b"\x07\x01"  # type: ignore[arg-type]


def test_secured_answer_to_another_request_is_rejected() -> None:
    lab = LabMac(b"k" * 16, random=lambda n: bytes(n))  # a constant RN: replays would verify
    client, server = Client(security=lab), Server(security=lab)
    first = serve(server, client.get(METER, ENERGY, secured=True))
    old_reply = server.respond(METER, first, answer(first))
    client.receive_data(old_reply)
    assert isinstance(client.next_event(), GetResponseNormal)
    client.get(METER, ENERGY, secured=True)  # a new request with a new PIID
    client.receive_data(old_reply)  # replayed: the MAC verifies, the PIID does not match
    with pytest.raises(Dlt698SecurityError, match="another request"):
        client.next_event()


def test_endless_fragments_are_abandoned() -> None:
    from protocols.dlt698.connection import MAX_REASSEMBLED
    from protocols.dlt698.frame import Fragment, FragmentType

    client = Client()
    client.get(METER, ENERGY)
    chunk = bytes(1000)
    kinds = [FragmentType.FIRST] + [FragmentType.MIDDLE] * (MAX_REASSEMBLED // 1000 + 1)
    with pytest.raises(Dlt698ValueError, match="abandoned"):
        for number, kind in enumerate(kinds):
            frame = Frame(0xC3, ServerAddress(METER), chunk, 0, Fragment(number, kind))
            client.receive_data(encode_frame(frame))
            assert client.next_event() is NEED_DATA
            client.data_to_send()
    assert not client.awaiting_reply
