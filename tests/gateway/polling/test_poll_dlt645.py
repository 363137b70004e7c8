"""DL/T 645 polling: energy, events (counters → records), daily frozen and back-fill.

The meters are the codec's own slave role behind an in-memory link.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from gateway.bus.link import MemoryLink
from gateway.bus.timing import LineTiming
from gateway.bus.worker import BusWorker
from gateway.config import MeterConfig
from gateway.polling import Group, Poller
from gateway.polling.drivers import make_driver
from gateway.polling.frozen import FrozenReader
from protocols.dlt645 import NEED_DATA as DLT_NEED
from protocols.dlt645 import AbnormalReply, EventRecord, Function, ReadData, ReadReply, Slave
from protocols.model import EventType, Flag, MeterTime, ReadingKind
from taiqu.clock import ManualClock

FAST = LineTiming(baud=115200, bits_per_char=11, response_timeout=0.05)
ZONE = "Asia/Shanghai"
TOTAL = "energy.active.import.total"


class FakeMeter:
    """A DL/T 645-2007 meter's registers, freezes and cover records."""

    def __init__(self, address: str, energy: str) -> None:
        self.address = address
        self.energy = Decimal(energy)
        self.freezes: list[tuple[datetime, Decimal]] = []  # newest first, meter local time
        self.cover_count = 0
        self.cover_records: list[EventRecord] = []  # newest first
        self.sw3 = 0

    def values(self, di: int) -> dict | None:
        tariffs = {
            f"energy.active.import.t{n}": (self.energy / 4).quantize(Decimal("0.01"))
            for n in range(1, 5)
        }
        if di == 0x0001FF00:
            return {TOTAL: self.energy, **tariffs}
        if di == 0x00010000:
            return {TOTAL: self.energy}
        if di == 0x03300D00:
            return {"events.meter_cover.count": self.cover_count}
        if di in (0x03300E00, 0x03110000):
            return {
                "events.terminal_cover.count" if di == 0x03300E00 else "events.power_down.count": 0
            }
        if 0x03300D01 <= di <= 0x03300D0A:
            n = di & 0xFF
            if n > len(self.cover_records):
                return None
            return {"events.meter_cover.record": self.cover_records[n - 1]}
        if di & ~0xFF == 0x05060000 and di & 0xFF:
            n = di & 0xFF
            if n > len(self.freezes):
                return None
            return {"freeze.time": MeterTime(self.freezes[n - 1][0], ZONE)}
        if di & ~0xFF == 0x05060100 and di & 0xFF:
            n = di & 0xFF
            if n > len(self.freezes):
                return None
            e = self.freezes[n - 1][1]
            return {
                TOTAL: e,
                **{
                    f"energy.active.import.t{k}": (e / 4).quantize(Decimal("0.01"))
                    for k in range(1, 5)
                },
            }
        return None


class Bus:
    def __init__(self, *meters: FakeMeter) -> None:
        self.meters = {m.address: m for m in meters}
        self.silent: set[str] = set()
        self.log: list[tuple[str, int]] = []

    def __call__(self, request: bytes) -> bytes | None:
        slave = Slave()
        slave.receive_data(request)
        req = slave.next_event()
        assert req is not DLT_NEED and isinstance(req, ReadData)
        self.log.append((req.address, req.di))
        meter = self.meters.get(req.address)
        if meter is None or req.address in self.silent:
            return None
        values = meter.values(req.di)
        if values is None:
            return slave.send(AbnormalReply(req.address, Function.READ, 0x02, ("no_data",)))
        return slave.send(ReadReply(req.address, req.di, values))


class Store:
    def __init__(self) -> None:
        self.readings, self.events, self.state, self.frozen = [], [], {}, set()

    def append_readings(self, readings, command=None):
        self.readings += readings
        self.frozen |= {(r.meter, r.freeze_time) for r in readings if r.freeze_time}

    def append_events(self, events):
        self.events += events

    def get_state(self, key, default=None):
        return self.state.get(key, default)

    def set_state(self, key, value):
        self.state[key] = value

    def has_frozen(self, meter, freeze_time):
        return (meter, freeze_time) in self.frozen


def cfg(address: str, role: str = "customer") -> MeterConfig:
    return MeterConfig(bus="bus1", protocol="dlt645-2007", address=address, role=role)


@pytest.fixture
async def rig():
    meters = [FakeMeter("000000000001", "1234.56"), FakeMeter("000000000002", "99.99")]
    bus = Bus(*meters)
    worker = BusWorker("bus1", MemoryLink(bus), FAST, retries=1)
    worker.start()
    clock = ManualClock(datetime(2026, 3, 10, 0, 5, tzinfo=UTC))
    store = Store()
    poller = Poller({"bus1": worker}, clock, store, make_driver, zone=ZONE, state=store)
    poller.set_meters([cfg("000000000001"), cfg("000000000002", role="area_total")])
    yield meters, bus, clock, store, poller
    await worker.stop()


async def test_energy_sweep_reads_the_block(rig):
    _meters, bus, _, store, poller = rig
    report = await poller.sweep(Group.ENERGY)
    assert report.read == 2
    assert bus.log[0] == ("000000000002", 0x0001FF00)  # area total first
    assert ("000000000002", 0x0002FF00) in bus.log  # and its reverse energy
    got = {(r.meter, r.quantity): r.value for r in store.readings}
    assert got[("000000000001", TOTAL)] == Decimal("1234.56")
    assert got[("000000000001", "energy.active.import.t4")] == Decimal("308.64")
    assert all(r.kind is ReadingKind.INTERVAL for r in store.readings)


async def test_new_cover_records_become_events_once(rig):
    meters, bus, clock, store, poller = rig
    await poller.sweep(Group.EVENTS)  # baseline
    assert not [e for e in store.events if e.type is EventType.METER_COVER_OPEN]
    start = datetime(2026, 3, 10, 7, 0)
    fields = {
        f"{k}.{w}": Decimal(0)
        for w in ("before", "after")
        for k in (
            "energy.active.import.total",
            "energy.active.export.total",
            "energy.reactive.q1.total",
            "energy.reactive.q2.total",
            "energy.reactive.q3.total",
            "energy.reactive.q4.total",
        )
    }
    meters[0].cover_records.insert(
        0,
        EventRecord(MeterTime(start, ZONE), MeterTime(start + timedelta(minutes=3), ZONE), fields),
    )
    meters[0].cover_count = 1
    clock.advance(300)
    await poller.sweep(Group.EVENTS)
    clock.advance(300)
    await poller.sweep(Group.EVENTS)
    covers = [e for e in store.events if e.type is EventType.METER_COVER_OPEN]
    assert len(covers) == 1 and covers[0].meter == "000000000001"
    assert covers[0].start == MeterTime(start, ZONE).aware
    assert ("000000000001", 0x03300D01) in bus.log


async def test_daily_frozen_backfills_missing_days_once(rig):
    meters, _bus, _clock, store, poller = rig
    for m in meters:
        m.freezes = [(datetime(2026, 3, 10 - k, 0, 0), Decimal(100 - k)) for k in range(0, 5)]
    reader = FrozenReader(poller, store)
    report = await reader.run(3)
    assert report.days_stored == 6 and not report.failed
    frozen = [
        r for r in store.readings if r.kind is ReadingKind.DAILY_FROZEN and r.quantity == TOTAL
    ]
    by_day = {(r.meter, r.freeze_time.astimezone(UTC)): r for r in frozen}
    newest = MeterTime(datetime(2026, 3, 10), ZONE).aware
    assert by_day[("000000000001", newest)].value == Decimal(100)
    assert Flag.BACKFILLED.value not in by_day[("000000000001", newest)].flags
    older = MeterTime(datetime(2026, 3, 8), ZONE).aware
    assert Flag.BACKFILLED.value in by_day[("000000000001", older)].flags
    # a second run stores nothing new; a longer one fetches only the older days
    assert (await reader.run(3)).days_stored == 0
    assert (await reader.run(7)).days_stored == 4  # 5 freezes kept, 3 already stored, × 2 meters


async def test_backfill_of_a_date_range(rig):
    meters, _, _, store, poller = rig
    for m in meters:
        m.freezes = [(datetime(2026, 3, 10 - k, 0, 0), Decimal(100 - k)) for k in range(0, 8)]
    report = await FrozenReader(poller, store).run(
        62, since=date(2026, 3, 4), until=date(2026, 3, 6), meters=["000000000001"]
    )
    assert report.stored == {"000000000001": [date(2026, 3, 6), date(2026, 3, 5), date(2026, 3, 4)]}


async def test_silent_meter_does_not_stop_the_frozen_run(rig):
    meters, bus, _, store, poller = rig
    for m in meters:
        m.freezes = [(datetime(2026, 3, 10, 0, 0), Decimal(1))]
    bus.silent.add("000000000002")
    report = await FrozenReader(poller, store).run(7)
    assert report.failed == ["000000000002"] and report.stored == {
        "000000000001": [date(2026, 3, 10)]
    }


async def test_on_demand_read_of_named_quantities(rig):
    meters, bus, _, _store, poller = rig
    meters[0].energy = Decimal("5.00")
    readings = await poller.read_now("000000000001", ["energy.active.import.total"])
    assert [(r.quantity, r.value, r.kind) for r in readings] == [
        (TOTAL, Decimal("5.00"), ReadingKind.ON_DEMAND)
    ]
    assert bus.log[-1] == ("000000000001", 0x00010000)
