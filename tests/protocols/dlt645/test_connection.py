"""Master and Slave wired together with no port (wsproto/h11 ConnectionPair style)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest

from protocols.dlt645 import (
    NEED_DATA,
    AbnormalReply,
    AddressReply,
    BaudAck,
    BroadcastTimeSync,
    ChangeBaud,
    ControlAck,
    ControlAction,
    Dlt645ValueError,
    Freeze,
    FreezeAck,
    FreezeTime,
    Function,
    Master,
    ReadAddress,
    ReadData,
    ReadFollowUp,
    ReadReply,
    RemoteControl,
    Slave,
    Version,
    WriteAck,
    WriteData,
)
from protocols.dlt645.security import Plaintext

ADDR = "123456789012"


def exchange(master: Master, slave: Slave, request, reply_for):
    """Send ``request`` through the slave, answer with ``reply_for(req)``, return master's event."""
    slave.receive_data(master.send(request))
    received = slave.next_event()
    assert slave.next_event() is NEED_DATA
    reply = reply_for(received)
    master.receive_data(slave.send(reply))
    return received, master.next_event()


def test_read_energy_round_trip():
    master, slave = Master(), Slave()
    value = Decimal("123456.78")
    req, rep = exchange(
        master,
        slave,
        ReadData(ADDR, 0x00010000),
        lambda r: ReadReply(r.address, r.di, {"energy.active.import.total": value}),
    )
    assert req == ReadData(ADDR, 0x00010000, Version.V2007)
    assert isinstance(rep, ReadReply)
    assert rep.values == {"energy.active.import.total": value}
    assert rep.address == ADDR and not rep.follow_up
    assert master.next_event() is NEED_DATA


def test_block_read_returns_members():
    master, slave = Master(), Slave()
    values = {
        f"energy.active.import.{k}": Decimal(v)
        for k, v in [
            ("total", "10.00"),
            ("t1", "1.00"),
            ("t2", "2.00"),
            ("t3", "3.00"),
            ("t4", "4.00"),
        ]
    }
    _, rep = exchange(
        master, slave, ReadData(ADDR, 0x0001FF00), lambda r: ReadReply(r.address, r.di, values)
    )
    assert rep.values == values


def test_1997_read_uses_two_byte_identifier():
    master, slave = Master(version=Version.V1997), Slave(version=Version.V1997)
    wire = master.send(ReadData(ADDR, 0x9010))
    assert wire[-6:-2] == bytes.fromhex("010243C3")  # C=01 L=02 DI 9010 sent 10 90 (+33)
    slave.receive_data(wire)
    req = slave.next_event()
    assert req == ReadData(ADDR, 0x9010, Version.V1997)
    master.receive_data(
        slave.send(ReadReply(ADDR, 0x9010, {"energy.active.import.total": Decimal("5.5")}))
    )
    rep = master.next_event()
    assert rep.values["energy.active.import.total"] == Decimal("5.50")


def test_master_ignores_echo_and_other_meters():
    master, slave = Master(), Slave()
    request_bytes = master.send(ReadData(ADDR, 0x02010100))
    other = Slave().send(ReadReply("000000000001", 0x02010100, {"voltage.a": Decimal("220.0")}))
    mine = slave.send(ReadReply(ADDR, 0x02010100, {"voltage.a": Decimal("229.9")}))
    master.receive_data(request_bytes + b"\x00\x11" + other + mine)
    rep = master.next_event()
    assert rep.values == {"voltage.a": Decimal("229.9")}
    assert master.echoes == 1 and master.ignored == 1 and master.dropped_bytes == 2


def test_abnormal_reply_is_an_event_with_reasons():
    master, slave = Master(), Slave()
    _, rep = exchange(
        master,
        slave,
        ReadData(ADDR, 0x04000501),
        lambda r: AbnormalReply(r.address, Function.READ, 0x02),
    )
    assert isinstance(rep, AbnormalReply)
    assert rep.function is Function.READ and rep.error == 0x02
    assert rep.reasons == ("no_requested_data",)


def test_combined_error_bits_are_all_named():
    master, slave = Master(), Slave()
    _, rep = exchange(
        master,
        slave,
        RemoteControl(ADDR, ControlAction.TRIP, valid_until=datetime(2030, 1, 1)),
        lambda r: AbnormalReply(r.address, Function.REMOTE_CONTROL, 0x05),
    )
    assert rep.reasons == ("other_error", "password_error_or_unauthorised")


def test_follow_up_frames():
    master, slave = Master(), Slave()
    _, first = exchange(
        master,
        slave,
        ReadData(ADDR, 0x00010000),
        lambda r: ReadReply(r.address, r.di, {"energy.active.import.total": 1}, follow_up=True),
    )
    assert first.follow_up
    req, second = exchange(
        master,
        slave,
        master.follow_up(first),
        lambda r: ReadReply(r.address, r.di, {"energy.active.import.total": 2}, seq=r.seq),
    )
    assert req == ReadFollowUp(ADDR, 0x00010000, 1, Version.V2007)
    assert second.seq == 1 and not second.follow_up
    assert second.values == {"energy.active.import.total": Decimal("2.00")}


def test_read_address_write_freeze_baud_control():
    master, slave = Master(), Slave()
    req, rep = exchange(master, slave, ReadAddress(), lambda r: AddressReply(ADDR))
    assert req.address == "AAAAAAAAAAAA" and rep == AddressReply(ADDR, Version.V2007)
    req, rep = exchange(
        master,
        slave,
        WriteData(
            ADDR, 0x04000102, datetime(2024, 1, 1, 12, 30, 15).time(), "02123456", "11223344"
        ),
        lambda r: WriteAck(r.address),
    )
    assert req.password == "02123456" and req.operator == "11223344"
    assert str(req.value) == "12:30:15" and isinstance(rep, WriteAck)
    req, rep = exchange(
        master, slave, Freeze(ADDR, FreezeTime(hour=0, minute=0)), lambda r: FreezeAck(r.address)
    )
    assert req.when == FreezeTime(None, None, 0, 0) and isinstance(rep, FreezeAck)
    req, rep = exchange(master, slave, ChangeBaud(ADDR, 9600), lambda r: BaudAck(r.address, r.baud))
    assert req.baud == 9600 and rep.baud == 9600
    until = datetime(2031, 12, 31, 23, 59, 59)
    for action in ControlAction:
        req, rep = exchange(
            master,
            slave,
            RemoteControl(ADDR, action, valid_until=until),
            lambda r: ControlAck(r.address),
        )
        assert req.action is action and req.valid_until == until and isinstance(rep, ControlAck)


def test_broadcast_time_sync_expects_no_reply():
    master, slave = Master(), Slave()
    when = datetime(2024, 2, 29, 23, 59, 58)
    wire = master.send(BroadcastTimeSync(when))
    assert not master.awaiting_reply
    # seconds first on the wire: 58 59 23 29 02 24 (+33H each)
    assert wire[-8:-2] == bytes(b + 0x33 for b in bytes.fromhex("585923290224"))
    slave.receive_data(wire)
    assert slave.next_event() == BroadcastTimeSync(when, "999999999999", Version.V2007)


def test_bad_value_raises_value_error_and_connection_survives():
    master, slave = Master(), Slave()
    slave.receive_data(master.send(ReadData(ADDR, 0x02010100)))
    slave.next_event()
    master.receive_data(slave.send(ReadReply(ADDR, 0x02010100, raw=b"\xff\xff")))
    with pytest.raises(Dlt645ValueError) as info:
        master.next_event()
    assert info.value.frame is not None and info.value.frame.address == ADDR
    _, rep = exchange(
        master,
        slave,
        ReadData(ADDR, 0x02800002),
        lambda r: ReadReply(r.address, r.di, {"frequency": Decimal("50.01")}),
    )
    assert rep.values == {"frequency": Decimal("50.01")}


def test_sealer_seam_wraps_control_data():
    class Reverse(Plaintext):
        def seal(self, request, plaintext):
            return plaintext[::-1]

    master = Master(sealer=Reverse())
    until = datetime(2030, 1, 1)
    plain = Master().send(RemoteControl(ADDR, ControlAction.ALARM, valid_until=until))
    sealed = master.send(RemoteControl(ADDR, ControlAction.ALARM, valid_until=until))
    assert sealed[:14] == plain[:14] and sealed[14:-2] == plain[14:-2][::-1]
