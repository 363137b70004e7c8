"""Codec master ↔ simulated ESAM meter, no gateway: the secured flow and what an attacker tries.

The master side seals with the head-end's software encryption service; the meter's software ESAM
shares nothing with it but the laboratory master key file (as a meter shares keys with the
utility's encryption machine).  Bytes go through ``protocols.dlt645.Master`` and the simulator's
``Dlt645Listener`` exactly as on a bus.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from headend.esam import SessionInfo
from headend.esam.software import SoftwareEncryptionService, create_key_file, read_key_file
from protocols.dlt645 import (
    DI_READBACK,
    NEED_DATA,
    AbnormalReply,
    Authenticate,
    Authenticated,
    ControlAck,
    ControlAction,
    Function,
    InvalidateAuthentication,
    Master,
    ReadBack,
    ReadBackData,
    ReadData,
    ReadReply,
    RemoteControl,
    Reply,
    Request,
    SecuredControl,
    SecuredWrite,
    Version,
    WriteAck,
    encode_value,
    readback_identifier,
)
from protocols.esam import reply_header
from simulators.dlt645.meter import Dlt645Listener
from simulators.esam import SoftwareEsam
from simulators.meter import Meter, MeterSpec, Relay

ADDRESS = "000000000042"
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()


class Rig:
    """A master, a meter with an ESAM on a listener, the service and a clock in seconds."""

    def __init__(self, key_file, **esam: object) -> None:
        self.service = SoftwareEncryptionService(key_file)
        self.meter = Meter(MeterSpec(address=ADDRESS), T0 - 3600)
        self.esam = SoftwareEsam(read_key_file(key_file), ADDRESS, **esam)  # type: ignore[arg-type]
        self.listener = Dlt645Listener(Version.V2007, [self.meter])
        self.listener.add_esam(self.esam)
        self.master = Master(preamble=0)
        self.key_file = key_file
        self.ts = T0

    def ask(self, request: Request) -> Reply:
        answers = self.listener.feed(self.master.send(request), self.ts)
        assert len(answers) == 1
        self.master.receive_data(answers[0].data)
        reply = self.master.next_event()
        assert reply is not NEED_DATA
        return reply

    def authenticate(self) -> SessionInfo:
        challenge = self.service.authenticate(ADDRESS)
        reply = self.ask(
            Authenticate(ADDRESS, challenge.ciphertext1, challenge.random1, challenge.factor)
        )
        assert isinstance(reply, Authenticated), reply
        return SessionInfo(challenge, reply.random2, reply.esam_serial)

    def until(self, minutes: int = 5) -> datetime:
        return self.meter.meter_time(self.ts).replace(microsecond=0) + timedelta(minutes=minutes)

    def control(self, session: SessionInfo, seq: int, action: ControlAction) -> SecuredControl:
        sealed = self.service.seal_control(session, seq, int(action), self.until())
        return SecuredControl(ADDRESS, sealed)


@pytest.fixture
def key_file(tmp_path):
    path = tmp_path / "esam.key"
    create_key_file(path)
    return path


@pytest.fixture
def rig(key_file):
    return Rig(key_file)


def refused(reply: Reply, function: Function) -> bool:
    return isinstance(reply, AbnormalReply) and reply.function is function


def test_secured_trip_and_close_are_accepted_with_ground_truth(rig):
    session = rig.authenticate()
    assert rig.ask(rig.control(session, 0, ControlAction.TRIP)) == ControlAck(
        ADDRESS, Version.V2007
    )
    assert rig.meter.relay(rig.ts) is Relay.OPEN
    rig.ts += 10
    assert isinstance(rig.ask(rig.control(session, 1, ControlAction.CLOSE_DIRECT)), ControlAck)
    assert rig.meter.relay(rig.ts) is Relay.CLOSED
    kinds = [(e.kind, e.accepted, e.detail.get("action")) for e in rig.esam.log]
    assert kinds == [
        ("authenticate", True, None),
        ("control", True, "TRIP"),
        ("control", True, "CLOSE_DIRECT"),
    ]


def test_plaintext_control_is_refused(rig):
    plain = RemoteControl(ADDRESS, ControlAction.TRIP, valid_until=rig.until())
    reply = rig.ask(plain)
    assert refused(reply, Function.REMOTE_CONTROL)
    assert reply.reasons == ("password_error_or_unauthorised",)
    assert rig.meter.relay(rig.ts) is Relay.CLOSED
    assert rig.esam.log[-1].kind == "plaintext_control" and not rig.esam.log[-1].accepted


def test_plaintext_control_works_in_factory_mode(key_file):
    rig = Rig(key_file, factory_mode=True)
    assert isinstance(
        rig.ask(RemoteControl(ADDRESS, ControlAction.TRIP, valid_until=rig.until())), ControlAck
    )
    assert rig.meter.relay(rig.ts) is Relay.OPEN


def test_forged_mac_is_refused(rig):
    session = rig.authenticate()
    good = rig.control(session, 0, ControlAction.TRIP)
    forged = replace(good, sealed=good.sealed[:-1] + bytes((good.sealed[-1] ^ 0x01,)))
    assert refused(rig.ask(forged), Function.REMOTE_CONTROL)
    assert rig.meter.relay(rig.ts) is Relay.CLOSED
    assert rig.esam.log[-1].reason == "MAC does not verify"
    # the ciphertext of another action under this session's MAC is refused as well
    other = rig.control(session, 0, ControlAction.CLOSE_DIRECT)
    spliced = replace(good, sealed=other.sealed[:16] + good.sealed[16:])
    assert refused(rig.ask(spliced), Function.REMOTE_CONTROL)
    assert rig.meter.relay(rig.ts) is Relay.CLOSED


def test_replayed_step_is_refused_in_the_same_and_in_a_new_session(rig):
    session = rig.authenticate()
    trip = rig.control(session, 0, ControlAction.TRIP)
    assert isinstance(rig.ask(trip), ControlAck)
    rig.ask(rig.control(session, 1, ControlAction.CLOSE_DIRECT))
    assert rig.meter.relay(rig.ts) is Relay.CLOSED
    assert refused(rig.ask(trip), Function.REMOTE_CONTROL)  # same session: sequence used
    rig.authenticate()
    assert refused(rig.ask(trip), Function.REMOTE_CONTROL)  # new session: new random 2
    assert rig.meter.relay(rig.ts) is Relay.CLOSED


def test_expired_session_is_refused(rig):
    session = rig.authenticate()
    step = rig.control(session, 0, ControlAction.TRIP)
    rig.ts += 301  # the 5-minute validity window has passed
    reply = rig.ask(step)
    assert refused(reply, Function.REMOTE_CONTROL)
    assert rig.esam.log[-1].reason == "no authenticated session"
    assert rig.meter.relay(rig.ts) is Relay.CLOSED
    session = rig.authenticate()  # a late step restarts from authentication
    assert isinstance(rig.ask(rig.control(session, 0, ControlAction.TRIP)), ControlAck)


def test_invalidated_session_is_refused(rig):
    session = rig.authenticate()
    reply = rig.ask(InvalidateAuthentication(ADDRESS))
    assert reply.di == 0x070002FF  # type: ignore[union-attr]
    assert refused(rig.ask(rig.control(session, 0, ControlAction.TRIP)), Function.REMOTE_CONTROL)


def test_every_third_mac_failure_closes_the_session(rig):
    session = rig.authenticate()
    forged = SecuredControl(ADDRESS, bytes(20))
    for _ in range(3):
        assert refused(rig.ask(forged), Function.REMOTE_CONTROL)
    assert not rig.esam.session_open(rig.ts)
    assert refused(rig.ask(rig.control(session, 0, ControlAction.TRIP)), Function.REMOTE_CONTROL)


def test_locks_after_repeated_failed_authentications_until_the_next_day(key_file):
    rig = Rig(key_file, max_failures=3)
    challenge = rig.service.authenticate(ADDRESS)
    wrong = Authenticate(ADDRESS, bytes(8), challenge.random1, challenge.factor)
    for _ in range(3):
        reply = rig.ask(wrong)
        assert refused(reply, Function.SECURITY)
        assert reply.reasons == ("authentication_failed",)
    assert rig.esam.locked(rig.meter, rig.ts)
    good = Authenticate(ADDRESS, challenge.ciphertext1, challenge.random1, challenge.factor)
    assert refused(rig.ask(good), Function.SECURITY)  # even the right ciphertext: locked
    assert rig.esam.log[-1].reason == "locked"
    rig.ts += 24 * 3600  # the meter's date changes
    assert isinstance(rig.ask(good), Authenticated)


def test_another_meters_challenge_is_refused(rig):
    challenge = rig.service.authenticate("000000000043")
    reply = rig.ask(
        Authenticate(ADDRESS, challenge.ciphertext1, challenge.random1, challenge.factor)
    )
    assert refused(reply, Function.SECURITY)


def test_clock_set_by_protected_writes_and_read_back(rig):
    session = rig.authenticate()
    target = datetime(2026, 3, 2, 9, 58, 30)  # the meter runs 90 s ahead of this
    date_value = encode_value(0x04000101, target.date())
    time_value = encode_value(0x04000102, target.time())
    mac_only = rig.service.seal_write(session, 0, 0x04000101, date_value, 0x99)
    refusal = rig.ask(SecuredWrite(ADDRESS, 0x04000101, mac_only))  # the clock is second class
    assert refused(refusal, Function.WRITE)
    assert rig.esam.log[-1].reason == "wrong level for this parameter"
    write_date = rig.service.seal_write(session, 0, 0x04000101, date_value, 0x98)
    write_time = rig.service.seal_write(session, 1, 0x04000102, time_value, 0x98)
    assert isinstance(rig.ask(SecuredWrite(ADDRESS, 0x04000101, write_date, "98000000")), WriteAck)
    reply = rig.ask(SecuredWrite(ADDRESS, 0x04000102, write_time, "98000000"))
    assert isinstance(reply, WriteAck)
    read = rig.ask(ReadData(ADDRESS, 0x04000102))
    assert isinstance(read, ReadReply)
    assert read.values["meter.time"] == time(9, 58, 30)
    assert rig.meter.meter_time(rig.ts).date() == date(2026, 3, 2)
    # a replayed write (sequence 1 is used) is refused, the clock is untouched
    assert refused(
        rig.ask(SecuredWrite(ADDRESS, 0x04000102, write_time, "98000000")), Function.WRITE
    )


def test_plaintext_clock_write_is_refused(rig):
    from protocols.dlt645 import WriteData

    reply = rig.ask(WriteData(ADDRESS, 0x04000102, time(1, 2, 3), "04000000"))
    assert refused(reply, Function.WRITE)
    assert rig.meter.meter_time(rig.ts).hour == 10


def test_a_meter_without_an_esam_refuses_secured_frames_with_the_right_function(key_file):
    rig = Rig(key_file)
    plain = Dlt645Listener(Version.V2007, [rig.meter])  # the same meter, no ESAM personality
    rig.listener = plain
    challenge = rig.service.authenticate(ADDRESS)
    reply = rig.ask(
        Authenticate(ADDRESS, challenge.ciphertext1, challenge.random1, challenge.factor)
    )
    assert refused(reply, Function.SECURITY) and reply.reasons == ("other_error",)
    assert refused(rig.ask(SecuredControl(ADDRESS, bytes(20))), Function.REMOTE_CONTROL)
    assert refused(
        rig.ask(SecuredWrite(ADDRESS, 0x04000102, bytes(20), "98000000")), Function.WRITE
    )
    assert rig.meter.relay(rig.ts) is Relay.CLOSED


def test_the_validity_window_is_set_with_a_mac_and_restarts_the_session(rig):
    from protocols.dlt645 import SecurityReply, SetAuthenticationValidity
    from protocols.esam import Session, meter_keys, write_header

    session = rig.authenticate()
    keys = meter_keys(read_key_file(rig.key_file), session.challenge.factor)
    meter_session = Session.derive(
        keys, session.challenge.random1, session.random2, session.esam_serial
    )
    mac = meter_session.mac_of(0, write_header(ADDRESS, 0x070001FF), bytes.fromhex("0010"))
    assert refused(
        rig.ask(SetAuthenticationValidity(ADDRESS, 10, bytes(4))), Function.SECURITY
    )  # a forged MAC
    reply = rig.ask(SetAuthenticationValidity(ADDRESS, 10, mac))
    assert isinstance(reply, SecurityReply) and reply.di == 0x070001FF
    rig.ts += 9 * 60  # inside the new 10-minute window (past the default 5)
    assert isinstance(rig.ask(rig.control(session, 1, ControlAction.TRIP)), ControlAck)
    rig.ts += 10 * 60 + 1
    assert refused(
        rig.ask(rig.control(session, 2, ControlAction.CLOSE_DIRECT)), Function.REMOTE_CONTROL
    )


def _readback_mac_ok(rig: Rig, session: SessionInfo, seq: int, reply: ReadBackData) -> bool:
    header = reply_header(ADDRESS, DI_READBACK)
    data = reply.identifier + reply.data
    return rig.service.verify_reply_mac(session, seq, header, data, reply.mac)


def test_the_esam_reads_back_the_control_it_opened_with_a_mac_the_service_verifies(key_file):
    rig = Rig(key_file)
    session = rig.authenticate()
    assert isinstance(rig.ask(rig.control(session, 0, ControlAction.TRIP)), ControlAck)
    reply = rig.ask(ReadBack(ADDRESS, readback_identifier(8, 0, 8)))
    assert isinstance(reply, ReadBackData)
    assert reply.data[:2] == bytes((int(ControlAction.TRIP), 0))  # N1 N2 + valid-until
    assert reply.data[2:] == bytes.fromhex(rig.until().strftime("%y%m%d%H%M%S"))
    assert _readback_mac_ok(rig, session, 1, reply)  # one sealed frame accepted
    assert not _readback_mac_ok(rig, session, 0, reply)  # "nothing accepted" does not verify
    assert not _readback_mac_ok(rig, session, 1, replace(reply, mac=b"\x00" * 4))
    assert not _readback_mac_ok(rig, session, 1, replace(reply, data=b"\x1b" + reply.data[1:]))
    assert [e.kind for e in rig.esam.log if e.accepted][-1] == "readback"


def test_a_read_back_needs_a_session_and_existing_data(key_file):
    rig = Rig(key_file)
    refused = rig.ask(ReadBack(ADDRESS, readback_identifier(8, 0, 8)))
    assert isinstance(refused, AbnormalReply) and refused.reasons == ("authentication_failed",)
    rig.authenticate()
    nothing = rig.ask(ReadBack(ADDRESS, readback_identifier(0x1A, 0, 0x5A)))
    assert isinstance(nothing, AbnormalReply) and nothing.reasons == ("other_error",)


def test_an_old_sessions_read_back_does_not_verify_in_a_new_one(key_file):
    rig = Rig(key_file)
    first = rig.authenticate()
    rig.ask(rig.control(first, 0, ControlAction.TRIP))
    old = rig.ask(ReadBack(ADDRESS, readback_identifier(8, 0, 8)))
    second = rig.authenticate()  # the control file still holds the trip; no new frame opened
    assert isinstance(old, ReadBackData)
    assert not _readback_mac_ok(rig, second, 1, old)  # a replayed proof fails
    fresh = rig.ask(ReadBack(ADDRESS, readback_identifier(8, 0, 8)))
    assert isinstance(fresh, ReadBackData) and not _readback_mac_ok(rig, second, 1, fresh)
    assert _readback_mac_ok(rig, second, 0, fresh)  # the ESAM says: nothing opened this session
