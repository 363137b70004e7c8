"""Meters that are not kind: partial blocks, refused blocks, silence on one identifier, filler,
follow-up frames.  The meter is alive whenever it answers; only total silence backs it off."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from gateway.bus.link import MemoryLink
from gateway.bus.timing import LineTiming
from gateway.bus.worker import BusWorker
from gateway.config import MeterConfig
from gateway.polling import Group, Poller
from gateway.polling.capability import state_key
from gateway.polling.drivers import make_driver
from protocols.dlt645 import AbnormalReply, Function, ReadData, ReadReply, Slave
from protocols.dlt645.data_ids import encode_values
from protocols.dlt645.messages import ReadFollowUp
from protocols.model import EventType
from taiqu.clock import ManualClock

FAST = LineTiming(baud=115200, bits_per_char=11, response_timeout=0.03)
ZONE = "Asia/Shanghai"
A = "000000000001"
TOTAL = "energy.active.import.total"

Answer = Callable[[int], "bytes | str | dict[str, Any] | None"]


class QuirkyBus:
    """One meter; ``answers[di]`` says what it does: a values dict, raw value bytes, "refuse",
    "silent" (default for what is not listed), or "split" (two frames, 12H follow-up)."""

    def __init__(self, answers: dict[int, Any]) -> None:
        self.answers = answers
        self.log: list[int] = []
        self.dead = False

    def __call__(self, request: bytes) -> bytes | None:
        slave = Slave()
        slave.receive_data(request)
        req = slave.next_event()
        if self.dead or not isinstance(req, ReadData | ReadFollowUp):
            return None
        self.log.append(req.di)
        what = self.answers.get(req.di, "silent")
        if isinstance(req, ReadFollowUp):
            return slave.send(ReadReply(A, req.di, raw=what[1], seq=req.seq))
        if what == "silent":
            return None
        if what == "refuse":
            return slave.send(AbnormalReply(A, Function.READ, 0x02, ("no_data",)))
        if isinstance(what, tuple):  # (first part, second part): a follow-up reply
            return slave.send(ReadReply(A, req.di, raw=what[0], follow_up=True))
        if isinstance(what, bytes):
            return slave.send(ReadReply(A, req.di, raw=what))
        return slave.send(ReadReply(A, req.di, what))


class StateStore:
    def __init__(self) -> None:
        self.readings: list[Any] = []
        self.events: list[Any] = []
        self.state: dict[str, Any] = {}

    def append_readings(self, readings: Any, command: Any = None) -> None:
        self.readings += readings

    def append_events(self, events: Any) -> None:
        self.events += events

    def get_state(self, key: str, default: Any = None) -> Any:
        return self.state.get(key, default)

    def set_state(self, key: str, value: Any) -> None:
        self.state[key] = value

    def values(self) -> dict[str, Any]:
        return {r.quantity: r.value for r in self.readings}

    def kinds(self) -> list[EventType]:
        return [e.type for e in self.events]


@pytest.fixture
async def rig() -> Any:
    workers: list[BusWorker] = []

    async def make(answers: dict[int, Any], store: StateStore | None = None) -> Any:
        bus = QuirkyBus(answers)
        worker = BusWorker("bus1", MemoryLink(bus), FAST, retries=0)
        worker.start()
        workers.append(worker)
        store = store or StateStore()
        clock = ManualClock(datetime(2026, 3, 10, 1, 0, tzinfo=UTC))
        poller = Poller({"bus1": worker}, clock, store, make_driver, zone=ZONE, state=store)
        poller.set_meters([MeterConfig(bus="bus1", protocol="dlt645-2007", address=A)])
        return bus, store, poller, clock

    yield make
    for w in workers:
        await w.stop()


ENERGY_SINGLES = {
    0x00010000: {TOTAL: Decimal("100.00")},
    **{0x00010000 | (n << 8): {f"energy.active.import.t{n}": Decimal("25.00")} for n in (1, 2, 3, 4)},
}


async def test_a_meter_refusing_the_energy_block_is_read_by_its_single_identifiers(rig) -> None:
    bus, store, poller, clock = await rig({0x0001FF00: "refuse", **ENERGY_SINGLES})
    report = await poller.sweep(Group.ENERGY)
    assert report.read == 1 and report.failed == 0
    assert store.values()[TOTAL] == Decimal("100.00")
    assert store.values()["energy.active.import.t4"] == Decimal("25.00")
    unavailable = [e for e in store.events if e.type is EventType.QUANTITY_UNAVAILABLE]
    assert [e.details["identifier"] for e in unavailable] == ["0001FF00"]
    assert unavailable[0].details["reason"] == "refused"
    # remembered: the next sweep goes straight to the single identifiers
    bus.log.clear()
    clock.advance(900)
    await poller.sweep(Group.ENERGY)
    assert 0x0001FF00 not in bus.log and 0x00010000 in bus.log
    assert poller.health()["uncollected"] == {}  # every quantity still arrives via singles


async def test_a_single_phase_meter_gives_phase_a_voltage_and_is_never_unreachable(rig) -> None:
    phase_a = encode_values(0x02010100, {"voltage.a": Decimal("229.8")})
    _bus, store, poller, clock = await rig(
        {
            0x0201FF00: phase_a,  # the block answered with phase A only: does not decode
            0x02010100: {"voltage.a": Decimal("229.8")},
            0x02010200: "refuse",
            # phase C silent; current, power, pf and frequency blocks silent too
            0x02800002: {"frequency": Decimal("50.01")},
        }
    )
    for _ in range(3):
        report = await poller.sweep(Group.INSTANT)
        clock.advance(900)
        assert report.read == 1 and report.failed == 0
    assert store.values()["voltage.a"] == Decimal("229.8")
    assert store.values()["frequency"] == Decimal("50.01")
    assert EventType.METER_UNREACHABLE not in store.kinds()
    reasons = {
        e.details["identifier"]: e.details["reason"]
        for e in store.events
        if e.type is EventType.QUANTITY_UNAVAILABLE
    }
    assert reasons["0201FF00"] == "undecodable"
    assert reasons["02010200"] == "refused"
    assert reasons["02010300"] == "unsupported"
    assert "voltage.b" in poller.health()["uncollected"][A]
    # each unreadable item was reported once, not once per sweep
    assert len(reasons) == sum(e.type is EventType.QUANTITY_UNAVAILABLE for e in store.events)


async def test_ff_filler_in_a_block_falls_back_to_the_members_that_decode(rig) -> None:
    _bus, store, poller, _ = await rig(
        {0x0001FF00: b"\xff" * 20, **ENERGY_SINGLES, 0x00010400: b"\xee\xee\xee\xee"}
    )
    await poller.sweep(Group.ENERGY)
    assert store.values()[TOTAL] == Decimal("100.00")
    assert "energy.active.import.t4" not in store.values()
    assert poller.health()["uncollected"][A] == ["energy.active.import.t4"]


async def test_silence_on_event_identifiers_while_others_answer_is_not_a_dead_meter(rig) -> None:
    energy = {TOTAL: Decimal("5.00"), **{f"energy.active.import.t{n}": Decimal("1.25")
                                        for n in (1, 2, 3, 4)}}
    # no event counters, no status words 1 and 7: silent on them; date, time, word 3 answer
    bus, store, poller, clock = await rig({
        0x0001FF00: energy,
        0x04000101: {"meter.date": datetime(2026, 3, 10).date()},
        0x04000102: {"meter.time": datetime(2026, 3, 10, 9, 0).time()},
        0x04000503: {"status.word3": 0},
    })
    await poller.sweep(Group.ENERGY)
    reports = []
    for _ in range(3):
        clock.advance(300)
        reports.append(await poller.sweep(Group.EVENTS))
    assert [r.read for r in reports] == [1, 1, 1]
    assert EventType.METER_UNREACHABLE not in store.kinds()
    assert store.values()["relay.state"] == "closed"
    mute = {e.details["identifier"] for e in store.events
            if e.type is EventType.QUANTITY_UNAVAILABLE}
    assert "03300D00" in mute and "04000503" not in mute  # confirmed by the second silence
    bus.log.clear()
    clock.advance(300)
    await poller.sweep(Group.EVENTS)
    assert 0x03300D00 not in bus.log and 0x04000503 in bus.log  # no longer asked
    clock.advance(300)
    await poller.sweep(Group.ENERGY)  # and energy is never skipped for it
    assert bus.log.count(0x0001FF00) == 1


async def test_a_dead_meter_costs_two_timeouts_then_one_while_backing_off(rig) -> None:
    bus, store, poller, clock = await rig(ENERGY_SINGLES | {0x0001FF00: "refuse"})
    bus.dead = True
    worker = poller.workers["bus1"]
    before = worker.stats.timeouts
    report = await poller.sweep(Group.INSTANT)
    assert report.failed == 1 and worker.stats.timeouts - before == 2
    assert store.kinds().count(EventType.METER_UNREACHABLE) == 1
    clock.advance(3600)
    before = worker.stats.timeouts
    await poller.sweep(Group.INSTANT)
    assert worker.stats.timeouts - before == 1
    assert EventType.QUANTITY_UNAVAILABLE not in store.kinds()  # silence of all is no lack


async def test_a_reply_in_two_frames_is_asked_for_and_joined(rig) -> None:
    raw = encode_values(0x0001FF00, {TOTAL: Decimal("321.00"), **{
        f"energy.active.import.t{n}": Decimal("80.25") for n in (1, 2, 3, 4)}})
    bus, store, poller, _ = await rig({0x0001FF00: (raw[:8], raw[8:])})
    await poller.sweep(Group.ENERGY)
    assert store.values()[TOTAL] == Decimal("321.00")
    assert store.values()["energy.active.import.t4"] == Decimal("80.25")
    assert bus.log.count(0x0001FF00) == 2  # the read, then the 12H follow-up


async def test_capabilities_survive_a_restart(rig) -> None:
    _bus, store, poller, _ = await rig({0x0001FF00: "refuse", **ENERGY_SINGLES})
    await poller.sweep(Group.ENERGY)
    assert store.get_state(state_key(A))["items"]["0001FF00"]["reason"] == "refused"
    bus2, _store2, poller2, _ = await rig({0x0001FF00: "refuse", **ENERGY_SINGLES}, store)
    await poller2.sweep(Group.ENERGY)
    assert 0x0001FF00 not in bus2.log
    assert store.values()[TOTAL] == Decimal("100.00")


async def test_the_export_sweep_reads_reverse_energy_of_a_customer_meter(rig) -> None:
    export = {f"energy.active.export.t{n}": Decimal("3.00") for n in (1, 2, 3, 4)}
    bus, store, poller, _ = await rig(
        {0x0002FF00: {"energy.active.export.total": Decimal("12.00"), **export}}
    )
    report = await poller.sweep(Group.EXPORT)
    assert report.read == 1 and bus.log == [0x0002FF00]
    assert store.values()["energy.active.export.total"] == Decimal("12.00")


async def test_the_daily_frozen_run_reads_the_reverse_freeze_when_asked(rig) -> None:
    from functools import partial

    from gateway.polling.frozen import FrozenReader
    from protocols.model import MeterTime, ReadingKind

    freeze = {"freeze.time": MeterTime(datetime(2026, 3, 10, 0, 0), ZONE)}
    forward = {TOTAL: Decimal("50.00"), **{f"energy.active.import.t{n}": Decimal("12.50")
                                          for n in (1, 2, 3, 4)}}
    reverse = {"energy.active.export.total": Decimal("8.00"), **{
        f"energy.active.export.t{n}": Decimal("2.00") for n in (1, 2, 3, 4)}}
    bus, store, poller, _ = await rig({0x05060001: freeze, 0x05060101: forward,
                                      0x05060201: reverse})
    poller.driver_factory = partial(make_driver, frozen_export=True)
    poller.meters.clear()
    poller.set_meters([MeterConfig(bus="bus1", protocol="dlt645-2007", address=A)])
    report = await FrozenReader(poller, type("I", (), {"has_frozen": lambda *a: False})()).run(1)
    assert report.days_stored == 1
    frozen = {r.quantity: r.value for r in store.readings if r.kind is ReadingKind.DAILY_FROZEN}
    assert frozen["energy.active.export.total"] == Decimal("8.00")
    assert frozen[TOTAL] == Decimal("50.00") and 0x05060201 in bus.log
