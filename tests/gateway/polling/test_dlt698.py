"""DL/T 698.45 polling: the gateway driver against the simulator's 698 meters in memory.

The meters are ``simulators.dlt698.meter`` (the codec's server role bound to meter state) behind
an in-memory link; the bus worker, poller, capability machinery and frozen reader are the real
ones.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from gateway.bus.link import MemoryLink
from gateway.bus.timing import LineTiming
from gateway.bus.worker import BusWorker
from gateway.config import MeterConfig
from gateway.polling import Group, Poller
from gateway.polling.dlt698 import Dlt698Driver
from gateway.polling.drivers import make_driver
from gateway.polling.frozen import FrozenReader
from protocols.dlt698 import apdu as A
from protocols.dlt698.axdr import NULL, Data
from protocols.dlt698.descriptors import OAD, DataType
from protocols.model import EventType, Flag, ReadingKind
from simulators.config import parse_config
from simulators.dlt698.meter import Dlt698Listener
from simulators.fleet import Fleet
from simulators.meter import Meter, total
from taiqu.clock import ManualClock

FAST = LineTiming(baud=115200, bits_per_char=11, response_timeout=0.05)
ZONE = "Asia/Shanghai"
START = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)
M1, M2 = "202612060001", "202612060009"
TOTAL = "energy.active.import.total"


def fleet_config() -> Any:
    return parse_config(
        {
            "buses": [{"name": "bus1", "baud": 9600}],
            "meters": [
                {"bus": "bus1", "protocol": "dlt698", "address": M1},
                {
                    "bus": "bus1",
                    "protocol": "dlt698",
                    "address": M2,
                    "scenarios": [
                        {"kind": "meter_cover_open", "after_s": 3600, "duration_s": 600},
                        {"kind": "meter_cover_open", "after_s": 5 * 3600, "duration_s": 60},
                        {"kind": "meter_cover_open", "after_s": 9 * 3600, "duration_s": 60},
                    ],
                },
            ],
        }
    )


class NoTerminalCover(Dlt698Listener):
    """Meters without the terminal-cover object (DAR 6 for 301C)."""

    def read(self, meter: Meter, oad: OAD, ts: float) -> Any:
        return None if oad.oi == 0x301C else super().read(meter, oad, ts)


class NeedsAssociation(Dlt698Listener):
    """Meters that refuse reads (DAR 15) outside an application association."""

    connects = 0

    def respond(self, meter: Meter, incoming: Any, ts: float) -> A.Response | None:
        request = incoming.request
        if isinstance(request, A.ConnectRequest):
            self.connects += 1
        elif (
            isinstance(request, A.GetRequestNormal | A.GetRequestNormalList)
            and meter.address not in self._associations
        ):
            oads = getattr(request, "oads", None) or (request.oad,)
            results = tuple(A.ResultNormal(o, None, 15) for o in oads)
            if isinstance(request, A.GetRequestNormal):
                return A.GetResponseNormal(request.piid, results[0])
            return A.GetResponseNormalList(request.piid, results)
        return super().respond(meter, incoming, ts)


class Store:
    def __init__(self) -> None:
        self.readings: list[Any] = []
        self.events: list[Any] = []
        self.state: dict[str, Any] = {}
        self.frozen: set[Any] = set()

    def append_readings(self, readings: Any, command: Any = None) -> None:
        self.readings += readings
        self.frozen |= {(r.meter, r.freeze_time) for r in readings if r.freeze_time}

    def append_events(self, events: Any) -> None:
        self.events += events

    def get_state(self, key: str, default: Any = None) -> Any:
        return self.state.get(key, default)

    def set_state(self, key: str, value: Any) -> None:
        self.state[key] = value

    def has_frozen(self, meter: str, freeze_time: Any) -> bool:
        return (meter, freeze_time) in self.frozen


class Rig:
    def __init__(self, listener_cls: type[Dlt698Listener] = Dlt698Listener, **kw: Any) -> None:
        self.clock = ManualClock(START)
        self.fleet = Fleet(fleet_config(), self.clock)
        self.listener = listener_cls([self.fleet.meter(M1), self.fleet.meter(M2)], **kw)
        self.link = MemoryLink(self.answer)
        self.worker = BusWorker("bus1", self.link, FAST, retries=1)
        self.store = Store()
        self.poller = Poller(
            {"bus1": self.worker}, self.clock, self.store, make_driver, zone=ZONE, state=self.store
        )
        self.poller.set_meters(
            [MeterConfig(bus="bus1", protocol="dlt698", address=a) for a in (M1, M2)]
        )

    def answer(self, request: bytes) -> bytes:
        answers = self.listener.feed(request, self.clock.now().timestamp())
        return b"".join(a.data for a in answers)

    def values(self, meter: str, kind: ReadingKind = ReadingKind.INTERVAL) -> dict[str, Any]:
        return {
            r.quantity: r.value for r in self.store.readings if r.meter == meter and r.kind is kind
        }


@pytest.fixture
async def rig() -> Any:
    r = Rig()
    r.worker.start()
    yield r
    await r.worker.stop()


async def make(listener_cls: type[Dlt698Listener], **kw: Any) -> Rig:
    r = Rig(listener_cls, **kw)
    r.worker.start()
    return r


def kwh(value: float) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"), "ROUND_DOWN")


async def test_energy_and_instant_sweeps_read_the_meter_model(rig: Rig) -> None:
    rig.clock.advance(5 * 3600)
    report = await rig.poller.sweep(Group.ENERGY)
    assert (report.read, report.failed) == (2, 0)
    await rig.poller.sweep(Group.INSTANT)
    now = rig.clock.now().timestamp()
    meter = rig.fleet.meter(M1)
    values = rig.values(M1)
    imports = meter.registered(now)[0]
    assert values[TOTAL] == kwh(total(imports))
    assert values["energy.active.import.t2"] == kwh(imports[1])
    assert values["voltage.a"] > 200 and "current.a" in values and "frequency" in values
    assert abs(values["power.active.total"] - Decimal(str(meter.power_kw(now)))) < Decimal("0.001")
    assert rig.worker.stats.transactions == 4  # one GET per meter and group


async def test_export_sweep_and_area_total_read_reverse_energy(rig: Rig) -> None:
    rig.poller.set_meters(
        [MeterConfig(bus="bus1", protocol="dlt698", address=M1, role="area_total")]
    )
    await rig.poller.sweep(Group.ENERGY)
    assert {TOTAL, "energy.active.export.total", "energy.active.export.t1"} <= set(rig.values(M1))


async def test_events_sweep_reports_cover_openings_once_with_clock_and_relay(rig: Rig) -> None:
    rig.clock.advance(10 * 3600)
    first = await rig.poller.sweep(Group.EVENTS)
    assert first.failed == 0
    rig.clock.advance(60)  # first contact reads the newest record, then the rest (gateway.events)
    await rig.poller.sweep(Group.EVENTS)
    covers = [e for e in rig.store.events if e.type is EventType.METER_COVER_OPEN]
    assert {e.meter for e in covers} == {M2}
    meter = rig.fleet.meter(M2)
    truth = meter.cover_records(meter.covers[0].cover, rig.clock.now().timestamp())
    starts = sorted(e.start.replace(tzinfo=None) for e in covers)
    assert len(covers) == 3 == len(truth)
    assert starts == sorted(meter.meter_time(r.start).replace(microsecond=0) for r in truth)
    visit = next(v for v in first.visits if v.meter == M2)
    assert visit.drift_s is not None and abs(visit.drift_s) < 120
    assert visit.values["relay.state"] == "closed"
    assert visit.values["events.meter_cover.count"] == 3
    # nothing new: the second sweep reads no records and reports nothing again
    before, sent = len(rig.store.events), len(rig.link.written)
    rig.clock.advance(60)
    await rig.poller.sweep(Group.EVENTS)
    assert len(rig.link.written) - sent == 2
    assert not [e for e in rig.store.events[before:] if e.type is EventType.METER_COVER_OPEN]


async def test_event_records_in_get_next_blocks_are_joined() -> None:
    rig = await make(Dlt698Listener, block_rows=1)
    try:
        rig.clock.advance(10 * 3600)
        await rig.poller.sweep(Group.EVENTS)
        rig.clock.advance(60)  # first contact: the newest record, then the rest
        await rig.poller.sweep(Group.EVENTS)
        covers = [e for e in rig.store.events if e.type is EventType.METER_COVER_OPEN]
        assert len(covers) == 3  # three rows, one per GET-Next block
        nexts = [w for w in rig.link.written if b"\x05\x05" in w]  # GET-Request-Next
        assert len(nexts) == 2
    finally:
        await rig.worker.stop()


async def test_fragmented_answers_are_confirmed_inside_one_exchange() -> None:
    rig = await make(Dlt698Listener, fragment_size=24)
    try:
        rig.clock.advance(3600)
        report = await rig.poller.sweep(Group.INSTANT)
        assert report.read == 2
        assert rig.worker.stats.transactions == 2  # one exchange per meter
        assert len(rig.link.written) > 4  # each took fragment confirmations
        assert rig.values(M1)["voltage.a"] > 200
    finally:
        await rig.worker.stop()


async def test_frozen_backfill_keyed_by_freeze_time_is_idempotent(rig: Rig) -> None:
    rig.clock.advance(4 * 86400 + 600)
    report = await FrozenReader(rig.poller, rig.store).run(3)
    assert report.days_stored == 6 and not report.failed
    meter = rig.fleet.meter(M1)
    frozen = [
        r
        for r in rig.store.readings
        if r.meter == M1 and r.kind is ReadingKind.DAILY_FROZEN and r.quantity == TOTAL
    ]
    now = rig.clock.now().timestamp()
    for n, reading in enumerate(sorted(frozen, key=lambda r: r.freeze_time, reverse=True), 1):
        day = meter.frozen(n, now)
        assert day is not None
        assert reading.freeze_time.replace(tzinfo=None) == day.local_time
        assert reading.value == kwh(total(day.import_kwh))
        assert (Flag.BACKFILLED.value in reading.flags) == (n > 1)
    again = await FrozenReader(rig.poller, rig.store).run(3)
    assert again.days_stored == 0


async def test_a_dar_marks_the_object_unsupported_and_keeps_the_meter() -> None:
    rig = await make(NoTerminalCover)
    try:
        rig.clock.advance(2 * 3600)
        report = await rig.poller.sweep(Group.EVENTS)
        assert (report.read, report.failed) == (2, 0)
        mp = rig.poller.meters[M2]
        assert not mp.state.failing
        assert mp.caps.reason("301C0400") == "refused"
        assert mp.caps.unavailable() == ["events.terminal_cover.count"]
        visit = next(v for v in report.visits if v.meter == M2)
        assert visit.values["events.meter_cover.count"] == 1  # the other members were read
        lost = [e for e in rig.store.events if e.type is EventType.QUANTITY_UNAVAILABLE]
        assert {e.details["identifier"] for e in lost if e.meter == M2} >= {"301C0400"}
        # next sweep: the list is skipped for its members, 301C is not asked again
        sent = len(rig.link.written)
        await rig.poller.sweep(Group.EVENTS)
        assert len(rig.link.written) - sent == 2 * 4
    finally:
        await rig.worker.stop()


async def test_meter_requiring_association_gets_a_connect_in_the_same_exchange() -> None:
    rig = await make(NeedsAssociation)
    try:
        report = await rig.poller.sweep(Group.ENERGY)
        assert (report.read, report.failed) == (2, 0)
        assert TOTAL in rig.values(M1) and TOTAL in rig.values(M2)
        listener = rig.listener
        assert isinstance(listener, NeedsAssociation) and listener.connects == 2
        driver = rig.poller.meters[M1].driver
        assert isinstance(driver, Dlt698Driver) and driver.association_required
        assert not rig.poller.meters[M1].caps.items  # a DAR 15 is not a missing object
        await rig.poller.sweep(Group.ENERGY)  # the association lives: no new CONNECT
        assert listener.connects == 2
        driver.associated(0)  # expired: the next exchange opens with a CONNECT
        await rig.poller.read_now(M1, [TOTAL])
        assert listener.connects == 3
    finally:
        await rig.worker.stop()


async def test_on_demand_read_of_named_quantities(rig: Rig) -> None:
    readings = await rig.poller.read_now(M1, ["voltage.b", "frequency", TOTAL])
    assert {r.quantity for r in readings} >= {"voltage.b", "frequency", TOTAL}
    assert all(r.kind is ReadingKind.ON_DEMAND for r in readings)
    driver = rig.poller.meters[M1].driver
    assert [i.key for i in driver.items_for(["voltage.b", "voltage.c"])] == ["20000200"]


async def test_silent_698_meter_fails_without_holding_up_the_other(rig: Rig) -> None:
    rig.listener._meters.pop(M2)  # taken off the bus
    report = await rig.poller.sweep(Group.ENERGY)
    assert (report.read, report.failed) == (1, 1)
    assert rig.poller.meters[M2].state.failing
    assert TOTAL in rig.values(M1)


def test_addresses_are_twelve_digits() -> None:
    with pytest.raises(ValueError, match="12 digits"):
        MeterConfig(bus="bus1", protocol="dlt698", address="20261206000A")
    assert MeterConfig(bus="bus1", protocol="dlt698", address=M1).id == M1


class SinglePhase(Dlt698Listener):
    """Single-phase meters: phases B and C of voltage and current are NULL."""

    def read(self, meter: Meter, oad: OAD, ts: float) -> Any:
        data = super().read(meter, oad, ts)
        if oad.oi in (0x2000, 0x2001) and oad.attribute == 2 and not oad.index:
            return Data(DataType.ARRAY, (data.value[0], NULL, NULL))
        return data


async def test_a_single_phase_meter_with_null_phases_gives_phase_a() -> None:
    rig = await make(SinglePhase)
    try:
        report = await rig.poller.sweep(Group.INSTANT)
        assert report.failed == 0
        values = rig.values(M1)
        assert values["voltage.a"] > 200 and "current.a" in values and "frequency" in values
        assert "voltage.b" not in values and "current.c" not in values
        assert not rig.poller.meters[M1].caps.items  # nothing marked unreadable
    finally:
        await rig.worker.stop()


async def test_a_garbled_apdu_in_a_good_frame_is_undecodable_not_a_dead_meter(rig: Rig) -> None:
    from protocols.dlt698.frame import Frame, control_byte, encode_frame, server_address

    answer = rig.answer

    def garble(request: bytes) -> bytes:
        reply = answer(request)
        if b"\x05\x02" in request:  # GET-Request-NormalList (instantaneous values)
            # a frame with valid HCS/FCS from the right meter, its APDU cut short
            bad = Frame(control_byte(True, False), server_address(M1), b"\x85\x02\x01\x05\x20")
            return encode_frame(bad)
        return reply

    rig.link.responder = garble
    rig.poller.set_meters([MeterConfig(bus="bus1", protocol="dlt698", address=M1)])
    report = await rig.poller.sweep(Group.INSTANT)
    assert (report.read, report.failed) == (1, 0)
    mp = rig.poller.meters[M1]
    assert not mp.state.failing
    list_key = "+".join(o.hex for o in mp.driver.plan(Group.INSTANT)[0].oads)
    assert mp.caps.reason(list_key) == "undecodable"
    assert rig.values(M1)["voltage.a"] > 200  # the single attributes were read instead


async def test_an_open_cover_is_reported_at_once_and_again_when_it_closes(rig: Rig) -> None:
    from simulators.meter import Cover

    rig.poller.set_meters([MeterConfig(bus="bus1", protocol="dlt698", address=M1)])
    await rig.poller.sweep(Group.EVENTS)  # baseline: no openings
    meter = rig.fleet.meter(M1)
    rig.clock.advance(60)
    meter.open_cover(Cover.METER, rig.clock.now().timestamp())
    rig.clock.advance(60)
    await rig.poller.sweep(Group.EVENTS)
    rig.clock.advance(600)
    meter.close_cover(Cover.METER, rig.clock.now().timestamp())
    rig.clock.advance(60)
    await rig.poller.sweep(Group.EVENTS)
    covers = [e for e in rig.store.events if e.type is EventType.METER_COVER_OPEN]
    assert [e.details["phase"] for e in covers] == ["start", "end"]
    assert covers[0].key == covers[1].key and covers[0].end is None
    assert covers[1].end is not None and covers[1].end > covers[1].start


class NoRangeSelector(Dlt698Listener):
    """Meters that refuse Selector10 on the daily freeze (DAR 7): one freeze per read."""

    def records(self, meter: Meter, request: Any, ts: float) -> A.ResultRecord:
        if request.oad.oi == 0x5004 and type(request.rsd).__name__ == "Selector10":
            return A.ResultRecord(request.oad, request.columns, None, 7)
        return super().records(meter, request, ts)


def frozen_totals(rig: Rig, meter: str) -> dict[Any, Decimal]:
    return {
        r.freeze_time: r.value
        for r in rig.store.readings
        if r.meter == meter and r.kind is ReadingKind.DAILY_FROZEN and r.quantity == TOTAL
    }


async def test_backfill_reads_a_week_in_one_range_read_joined_from_get_next_blocks() -> None:
    rig = await make(Dlt698Listener, block_rows=2)
    try:
        rig.poller.set_meters([MeterConfig(bus="bus1", protocol="dlt698", address=M1)])
        rig.clock.advance(8 * 86400 + 600)
        report = await FrozenReader(rig.poller, rig.store).run(7)
        assert report.stored[M1] == sorted(report.stored[M1], reverse=True)
        assert len(report.stored[M1]) == 7
        # one GET-Record (Selector10) and three GET-Next for blocks 2-4 of two rows each
        assert rig.worker.stats.transactions == 4
        now, meter = rig.clock.now().timestamp(), rig.fleet.meter(M1)
        for n in range(1, 8):
            day = meter.frozen(n, now)
            assert day is not None
            assert frozen_totals(rig, M1)[_aware(day.local_time)] == kwh(total(day.import_kwh))
        dated = await FrozenReader(rig.poller, rig.store).run(
            62, since=report.stored[M1][-1], until=report.stored[M1][0]
        )
        assert dated.days_stored == 0  # all kept already, keyed by freeze time
    finally:
        await rig.worker.stop()


async def test_a_meter_without_the_range_selector_is_read_one_freeze_at_a_time() -> None:
    rig = await make(NoRangeSelector)
    try:
        rig.poller.set_meters([MeterConfig(bus="bus1", protocol="dlt698", address=M1)])
        rig.clock.advance(4 * 86400 + 600)
        report = await FrozenReader(rig.poller, rig.store).run(3)
        assert len(report.stored[M1]) == 3 and not report.failed
        assert rig.worker.stats.transactions == 1 + 3  # the refused range, then Selector9 × 3
        assert not rig.poller.meters[M1].caps.items  # a refused selector is not a lack
    finally:
        await rig.worker.stop()


def _aware(local: datetime) -> datetime:
    from protocols.model import MeterTime

    return MeterTime(local, ZONE).aware
