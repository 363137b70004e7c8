"""DL/T 645-1997 at 1200 8E1, Modbus at 9600 8N1, and what a master at other settings hears."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from protocols.dlt645 import (
    AbnormalReply,
    Master,
    ReadData,
    ReadReply,
    Version,
    decode_frame,
    join_replies,
)
from protocols.modbus.pdu import ExceptionResponse, ReadRegisters, RegistersResponse
from protocols.modbus.registers import decode_block, load_map, plan_reads
from simulators.history import settlement_instant
from simulators.line import LineSettings, garble
from simulators.meter import total
from simulators.truth import readable

from .conftest import BusHarness
from .zoo import A, ask, ask_modbus, zoo

V9 = Version.V1997
OLD = "199700000001"


async def test_1997_meter_answers_current_and_settlement_energy_at_1200_8e1():
    fleet, clock = zoo("dlt645-1997", address=OLD, bus={"baud": 1200})
    meter = fleet.meters[OLD]
    now = clock.now().timestamp()
    async with BusHarness(fleet.buses["bus1"]) as h:
        current, _ = await ask(h, ReadData(OLD, 0x9010), V9)
        block, _ = await ask(h, ReadData(OLD, 0x901F), V9)
        assert isinstance(current, ReadReply) and isinstance(block, ReadReply)
        assert (
            block.values["energy.active.import.total"]
            == current.values["energy.active.import.total"]
        )
        for di, n in ((0x9410, 1), (0x9810, 2)):
            reply, _ = await ask(h, ReadData(OLD, di), V9)
            assert isinstance(reply, ReadReply)
            expected = total(meter.registered(settlement_instant(meter, n, now))[0])
            got = reply.values["energy.active.import.total"]
            assert Decimal(str(expected)) - Decimal("0.01") <= got <= Decimal(str(expected))
        voltage, _ = await ask(h, ReadData(OLD, 0xB611), V9)
        assert isinstance(voltage, ReadReply) and 200 < voltage.values["voltage.a"] < 240
        nothing, _ = await ask(h, ReadData(OLD, 0xB6FF), V9)
        assert isinstance(nothing, AbnormalReply)
        modern, raw = await ask(h, ReadData(OLD, 0x00010000))  # a 2007 frame to a 1997 meter
        assert modern is None and raw == b""  # a code it lacks: silence (no crash)
        again, _ = await ask(h, ReadData(OLD, 0x9010), V9)  # and the line still works
        assert isinstance(again, ReadReply)
    truth = readable(fleet, OLD)
    assert truth["line"] == "1200 8E1"
    assert not any(k.startswith("events.") for k in truth["quantities"])


async def test_1997_meter_is_noise_to_a_master_at_2400():
    fleet, _ = zoo("dlt645-1997", address=OLD)  # the bus (and the master) at 2400 8E1
    async with BusHarness(fleet.buses["bus1"]) as h:
        reply, raw = await ask(h, ReadData(OLD, 0x9010), V9)
    assert reply is None and raw == b""  # it never understood the request
    assert fleet.meters[OLD].reads == {}
    assert fleet.buses["bus1"].garbled_bytes > 0


async def test_switching_the_master_line_reaches_each_meter_at_its_own_settings():
    fleet, _ = zoo("ordinary", bus={"baud": 2400})
    bus = fleet.buses["bus1"]
    async with BusHarness(bus) as h:
        await asyncio.sleep(0)  # the bus took its master (at the bus's settings) …
        bus.set_master_line(LineSettings.parse("9600 8N1"))  # … who switches its port
        reply, raw = await ask(h, ReadData(A, 0x00010000))
        assert reply is None and raw == b""
        bus.set_master_line(LineSettings.parse("2400 8E1"))
        reply, _ = await ask(h, ReadData(A, 0x00010000))
        assert isinstance(reply, ReadReply)


def test_garbling_is_deterministic_and_never_a_frame():
    frame = bytes.fromhex("FEFEFEFE68010024112620681104333334331F16")
    a, b = LineSettings.parse("2400 8E1"), LineSettings.parse("9600 8N1")
    assert garble(frame, a, a) == frame
    heard = garble(frame, b, a)
    assert heard == garble(frame, b, a) and 0 < len(heard) <= len(frame)
    assert all(0x80 <= x <= 0xFD for x in heard)
    assert len(garble(frame, a, LineSettings.parse("2400 8O1"))) == len(frame)
    assert len(garble(frame, b, a)) == len(frame) // 4


@pytest.mark.parametrize("model", ["SDM630"])
async def test_gap_exception_meter_refuses_blocks_with_holes(model):
    fleet, _ = zoo("modbus-gap-exception", address="7", bus={"baud": 9600, "parity": "N"})
    ordinary, _ = zoo(
        "ordinary", address="7", protocol="modbus", model=model, bus={"baud": 9600, "parity": "N"}
    )
    meter_map = load_map(model)
    holed = next(
        b
        for b in plan_reads(model)
        if sum(r.words for r in meter_map.registers if r.quantity in b.quantities) < b.count
    )
    request = ReadRegisters(7, holed.function, holed.address, holed.count)
    async with BusHarness(fleet.buses["bus1"]) as h:
        refused, _ = await ask_modbus(h, request)
        assert isinstance(refused, ExceptionResponse) and refused.code == 2
        row = meter_map.register(holed.quantities[0])  # one mapped row alone is fine
        alone, _ = await ask_modbus(h, ReadRegisters(7, row.function, row.address, row.words))
        assert isinstance(alone, RegistersResponse)
    async with BusHarness(ordinary.buses["bus1"]) as h:
        answered, _ = await ask_modbus(h, request)
        assert isinstance(answered, RegistersResponse)  # holes read 0 on the ordinary meter
    truth = readable(fleet, "bus1:7")
    assert truth["exception_on_gap"] is True
    assert truth["blocks"][f"{holed.function}:{holed.address}+{holed.count}"] == "exception_02"
    assert (
        readable(ordinary, "bus1:7")["blocks"][f"{holed.function}:{holed.address}+{holed.count}"]
        == "readable"
    )


async def test_word_swapped_meter_decodes_only_with_the_other_word_order():
    fleet, _ = zoo("modbus-word-swapped", address="3", bus={"baud": 9600, "parity": "N"})
    model = fleet.meters["bus1:3"].spec.model
    meter_map = load_map(model)
    row = meter_map.register("voltage.a")
    async with BusHarness(fleet.buses["bus1"]) as h:
        reply, _ = await ask_modbus(h, ReadRegisters(3, row.function, row.address, row.words))
    assert isinstance(reply, RegistersResponse)
    as_documented = decode_block(model, row.function, row.address, reply.registers)
    assert not 200 < as_documented.get("voltage.a", 0) < 240
    swapped = list(reversed(reply.registers))
    assert 200 < decode_block(model, row.function, row.address, swapped)["voltage.a"] < 240


async def test_modbus_meter_at_9600_8n1_is_silent_to_a_2400_8e1_master():
    fleet, _ = zoo("modbus-gap-exception", address="7")  # bus left at 2400 8E1
    row = load_map("SDM630").register("voltage.a")
    async with BusHarness(fleet.buses["bus1"]) as h:
        reply, _ = await ask_modbus(h, ReadRegisters(7, row.function, row.address, row.words))
    assert reply is None


async def test_1997_follow_up_frames_come_in_order_without_a_sequence_number():
    fleet, _ = zoo("dlt645-1997", address=OLD, bus={"baud": 1200}, overrides={"max_frame_data": 16})
    async with BusHarness(fleet.buses["bus1"]) as h:
        first, raw = await ask(h, ReadData(OLD, 0x901F), V9)
        assert decode_frame(raw).control == 0xA1  # 81H | follow-up bit
        assert isinstance(first, ReadReply) and first.follow_up and len(first.raw) == 16
        rest, raw = await ask(h, Master(V9).follow_up(first), V9)
        assert decode_frame(raw).control == 0x82 and len(decode_frame(raw).data) == 2 + 4
        whole = join_replies([first, rest]).values
        single, _ = await ask(h, ReadData(OLD, 0x9014), V9)
    assert whole["energy.active.import.t4"] == single.values["energy.active.import.t4"]
