"""Each personality's read behaviour, driven with the DL/T 645 master codec (no gateway).

What a real meter of each kind sends is asserted on the wire bytes; where the codec cannot
decode it (a truncated phase block, FF/EE filler) that is asserted too, since the gateway must
cope with exactly that.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from protocols.dlt645 import (
    AbnormalReply,
    Dlt645ValueError,
    Master,
    ReadData,
    ReadReply,
    decode_frame,
    decode_reply,
    decode_value,
)
from simulators.history import settlement_instant
from simulators.meter import total
from simulators.truth import readable

from ..conftest import BusHarness
from ..zoo import START, A, ask, zoo

ENERGY, ENERGY_BLOCK = 0x00010000, 0x0001FF00
VOLTAGE_A, VOLTAGE_B, VOLTAGE_BLOCK = 0x02010100, 0x02010200, 0x0201FF00
POWER_BLOCK = 0x0203FF00


def value_bytes(raw: bytes) -> bytes:
    """The value bytes (offset removed, DI stripped) of the one reply frame in ``raw``."""
    return decode_frame(raw).data[4:]


async def test_ordinary_meter_answers_blocks_in_full():
    fleet, _ = zoo("ordinary")
    async with BusHarness(fleet.buses["bus1"]) as h:
        reply, _ = await ask(h, ReadData(A, ENERGY_BLOCK))
        assert isinstance(reply, ReadReply)
        assert set(reply.values) >= {f"energy.active.import.t{n}" for n in range(1, 5)}
        reply, raw = await ask(h, ReadData(A, VOLTAGE_BLOCK))
        assert len(value_bytes(raw)) == 6 and isinstance(reply, ReadReply)


async def test_single_phase_blocks_carry_phase_a_only():
    fleet, _ = zoo("single-phase")
    async with BusHarness(fleet.buses["bus1"]) as h:
        single, _ = await ask(h, ReadData(A, VOLTAGE_A))
        assert isinstance(single, ReadReply)
        master = Master()
        raw = await h.ask(master.send(ReadData(A, VOLTAGE_BLOCK)))
        master.receive_data(raw)
        with pytest.raises(Dlt645ValueError):  # 2 bytes where the block takes 6
            master.next_event()
        block = value_bytes(raw)
        assert len(block) == 2
        assert decode_value(VOLTAGE_A, block) == single.values["voltage.a"]
        raw = await h.ask(Master().send(ReadData(A, POWER_BLOCK)))
        assert len(value_bytes(raw)) == 6  # total + phase A
        refused, _ = await ask(h, ReadData(A, VOLTAGE_B))
        assert isinstance(refused, AbnormalReply) and refused.reasons == ("no_requested_data",)
    truth = readable(fleet, A)
    assert truth["identifiers"]["0201FF00"] == "partial"
    assert truth["quantities"]["voltage.a"]["outcome"] == "readable"
    assert truth["quantities"]["voltage.b"]["outcome"] == "refused"


async def test_no_block_meter_refuses_blocks_and_answers_single_identifiers():
    fleet, _ = zoo("no-blocks")
    async with BusHarness(fleet.buses["bus1"]) as h:
        for di in (ENERGY_BLOCK, VOLTAGE_BLOCK, 0x040005FF):
            reply, _ = await ask(h, ReadData(A, di))
            assert isinstance(reply, AbnormalReply), hex(di)
            assert reply.reasons == ("no_requested_data",)
        for di in (ENERGY, 0x00010100, 0x00010400, VOLTAGE_A):
            reply, _ = await ask(h, ReadData(A, di))
            assert isinstance(reply, ReadReply) and reply.values, hex(di)
        frozen, _ = await ask(h, ReadData(A, 0x05060101))  # a record block, not an FF block
        assert isinstance(frozen, ReadReply)
    meter = fleet.meters[A]
    assert meter.reads["0001FF00"] == {"refused": 1}
    truth = readable(fleet, A)
    assert truth["identifiers"]["0001FF00"] == "refused"
    assert truth["quantities"]["energy.active.import.total"]["via"] == ["00010000"]
    assert truth["groups"]["energy"] == {"outcome": "readable", "via": ["00010000"]}
    assert truth["groups"]["clock"]["via"] == ["04000101", "04000102"]


async def test_silent_meter_ignores_what_it_lacks_and_answers_the_rest():
    fleet, _ = zoo("silent-unsupported")
    async with BusHarness(fleet.buses["bus1"]) as h:
        for di in (0x02800001, 0x00030000, 0x0003FF00, 0x06040002):
            reply, raw = await ask(h, ReadData(A, di))
            assert reply is None and raw == b"", hex(di)
        reply, _ = await ask(h, ReadData(A, ENERGY))
        assert isinstance(reply, ReadReply)
        reply, _ = await ask(h, ReadData(A, 0x12345678))  # not in any table: silent too
        assert reply is None
    assert fleet.meters[A].reads["02800001"] == {"silent": 1}
    truth = readable(fleet, A)
    assert truth["quantities"]["current.n"]["outcome"] == "silent"
    assert truth["groups"]["load_profile"]["outcome"] == "silent"
    assert truth["groups"]["energy"]["outcome"] == "readable"


@pytest.mark.parametrize(
    ("personality", "di", "filled", "kept"),
    [
        ("filler-ff", ENERGY_BLOCK, (slice(12, 20), 0xFF), slice(0, 12)),
        ("filler-ee", VOLTAGE_BLOCK, (slice(2, 6), 0xEE), slice(0, 2)),
    ],
)
async def test_fillers_stand_for_lacking_block_members(personality, di, filled, kept):
    fleet, _ = zoo(personality)
    async with BusHarness(fleet.buses["bus1"]) as h:
        raw = await h.ask(Master().send(ReadData(A, di)))
        frame = decode_frame(raw)
        with pytest.raises(Dlt645ValueError):  # FF/EE is not BCD
            decode_reply(frame)
        block = frame.data[4:]
        span, byte = filled
        assert block[span] == bytes([byte]) * (span.stop - span.start)
        assert all(b != byte for b in block[kept])
        lacking = 0x00010300 if di == ENERGY_BLOCK else VOLTAGE_B
        reply, _ = await ask(h, ReadData(A, lacking))
        assert isinstance(reply, AbnormalReply)
    assert readable(fleet, A)["identifiers"][f"{di:08X}"] == "filled"


async def test_previous_settlement_periods_are_the_registers_on_day_one():
    fleet, clock = zoo("ordinary")
    meter = fleet.meters[A]
    async with BusHarness(fleet.buses["bus1"]) as h:
        now = clock.now().timestamp()
        for n, month in ((1, 3), (2, 2)):
            reply, _ = await ask(h, ReadData(A, ENERGY_BLOCK | n))
            assert isinstance(reply, ReadReply)
            instant = settlement_instant(meter, n, now)
            assert meter.meter_time(instant).month == month
            assert meter.meter_time(instant).day == 1 and meter.meter_time(instant).hour == 0
            expected = total(meter.registered(instant)[0])
            assert abs(float(reply.values["energy.active.import.total"]) - expected) < 0.011
        reply, _ = await ask(h, ReadData(A, ENERGY_BLOCK | 3))  # before the meter's history
        assert isinstance(reply, AbnormalReply)


async def test_reverse_energy_current_and_daily_frozen_for_rooftop_pv():
    fleet, _ = zoo("ordinary", scenarios=[{"kind": "reverse", "after_s": -3 * 86400}])
    async with BusHarness(fleet.buses["bus1"]) as h:
        current, _ = await ask(h, ReadData(A, 0x00020000))
        frozen, _ = await ask(h, ReadData(A, 0x05060201))
        assert isinstance(current, ReadReply) and isinstance(frozen, ReadReply)
        exported = current.values["energy.active.export.total"]
        assert 0 < frozen.values["energy.active.export.total"] < exported


async def test_busy_meter_is_silent_just_after_midnight():
    start = (START + timedelta(hours=12)).replace(hour=0, minute=0, second=0)  # local midnight
    fleet, clock = zoo("busy-midnight", start=start - timedelta(seconds=10))
    async with BusHarness(fleet.buses["bus1"]) as h:
        reply, _ = await ask(h, ReadData(A, ENERGY))
        assert isinstance(reply, ReadReply)  # 23:59:50
        clock.advance(20)
        reply, raw = await ask(h, ReadData(A, ENERGY))
        assert reply is None and raw == b""  # 00:00:10, freezing
        clock.advance(35)
        reply, _ = await ask(h, ReadData(A, ENERGY))
        assert isinstance(reply, ReadReply)  # 00:00:45
