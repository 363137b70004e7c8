"""Load profile records and settlement values read from simulated meters of the zoo.

The gateway's poller talks to the simulator's own listeners (the code that answers the wire)
through an in-memory link; what it stores is compared with what the simulated meter holds.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from gateway.bus.link import MemoryLink
from gateway.bus.timing import LineTiming
from gateway.bus.worker import BusWorker
from gateway.config import MeterConfig
from gateway.polling import Poller
from gateway.polling.drivers import make_driver
from gateway.polling.history import HistoryReader, HistorySettings, settlement_instant
from protocols.dlt645 import Slave, Version
from protocols.dlt645.data_ids import find_data_id
from protocols.dlt645.messages import ReadData, ReadFollowUp
from protocols.model import ReadingKind
from simulators.config import parse_config
from simulators.dlt645.reads import fit
from simulators.fleet import Fleet
from simulators.history import load_records, settlement_values
from taiqu.clock import ManualClock

FAST = LineTiming(baud=115200, bits_per_char=11, response_timeout=0.03)
ZONE = "Asia/Shanghai"
TZ = ZoneInfo(ZONE)
START = datetime(2026, 3, 17, 10, 7, 30, tzinfo=TZ)  # a Tuesday morning, meter-local
A = "202611240001"
TOTAL = "energy.active.import.total"


class Store:
    """The sink and state store the poller writes to."""

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

    def of(self, kind: ReadingKind) -> list[Any]:
        return [r for r in self.readings if r.kind is kind]


class Rig:
    """One simulated meter of a personality, the poller and the history reader on one bus."""

    def __init__(
        self, personality: str, protocol: str, start: datetime, overrides: dict[str, Any]
    ) -> None:
        self.clock = ManualClock(start.astimezone(ZoneInfo("UTC")))
        row: dict[str, Any] = {"bus": "bus1", "address": A, "personality": personality}
        if overrides:
            row["personality_overrides"] = overrides
        config = parse_config({"buses": [{"name": "bus1", "pace": False}], "meters": [row]})
        self.fleet = Fleet(config, self.clock)
        self.meter = self.fleet.meter(A)
        self.requests: list[Any] = []
        self.version = Version.V1997 if protocol == "dlt645-1997" else Version.V2007
        self.link = MemoryLink(self._answer)
        self.worker = BusWorker("bus1", self.link, FAST, retries=0)
        self.store = Store()
        self.poller = Poller(
            {"bus1": self.worker}, self.clock, self.store, make_driver, zone=ZONE, state=self.store
        )
        self.poller.set_meters([MeterConfig(bus="bus1", protocol=protocol, address=A)])
        settings = HistorySettings(interval_min=15, categories=(4, 1), backfill_hours=2)
        self.history = HistoryReader(self.poller, ZONE, settings)

    def _answer(self, request: bytes) -> bytes | None:
        slave = Slave(self.version)
        slave.receive_data(request)
        self.requests.append(slave.next_event())
        ts = self.clock.now().timestamp()
        bus = self.fleet.buses["bus1"]
        out = b"".join(a.data for lst in bus.listeners for a in lst.feed(request, ts))
        return out or None

    def asked(self, kind: type) -> list[Any]:
        return [r for r in self.requests if isinstance(r, kind)]


@pytest.fixture
async def rig() -> AsyncIterator[Any]:
    made: list[Rig] = []

    def make(
        personality: str = "ordinary",
        protocol: str = "dlt645-2007",
        start: datetime = START,
        **overrides: Any,
    ) -> Rig:
        r = Rig(personality, protocol, start, overrides)
        r.worker.start()
        made.append(r)
        return r

    yield make
    for r in made:
        await r.worker.stop()


def truth_records(r: Rig, category: int, since: datetime) -> dict[datetime, dict[str, Any]]:
    """The meter's category records after ``since`` (meter-local), as the wire carries them."""
    from protocols.dlt645.load_profile import CATEGORIES

    ts = r.clock.now().timestamp()
    _, fields = CATEGORIES[category]
    got = load_records(r.meter, category, 1, 99, _mt(since + timedelta(minutes=15)), ts)
    return {
        local: {name: fit(layout, values[name], name) for name, layout in fields}
        for local, values in got
    }


def _mt(local: datetime) -> Any:
    from protocols.model import MeterTime

    return MeterTime(local, ZONE)


def stored_records(r: Rig) -> dict[datetime, dict[str, Any]]:
    out: dict[datetime, dict[str, Any]] = {}
    for reading in r.store.of(ReadingKind.LOAD_PROFILE):
        local = reading.freeze_time.astimezone(TZ).replace(tzinfo=None)
        assert reading.meter_time == reading.freeze_time  # stamped with the meter's own time
        out.setdefault(local, {})[reading.quantity] = reading.value
    return out


def local_now(r: Rig) -> datetime:
    return r.clock.now().astimezone(TZ).replace(tzinfo=None)


async def test_load_records_since_the_last_are_stored_at_their_own_times(rig) -> None:
    r = rig()
    report = await r.history.load_profile()
    assert report.collected == [A] and report.refused == report.failed == []
    got = stored_records(r)
    # two hours back from 10:00 (the last record before 10:07:30): 08:15 … 10:00, both categories
    want_times = [datetime(2026, 3, 17, 8, 15) + timedelta(minutes=15 * i) for i in range(8)]
    assert sorted(got) == want_times
    truth = {t: {**truth_records(r, 4, t - timedelta(minutes=15))[t],
                 **truth_records(r, 1, t - timedelta(minutes=15))[t]} for t in want_times}  # fmt: skip
    for t in want_times:
        for name, value in got[t].items():
            assert value == truth[t][name], (t, name)
        assert {TOTAL, "voltage.a", "frequency"} <= set(got[t])
    # half an hour on: exactly the two new records of each category, nothing twice
    r.clock.advance(1800)
    before = len(r.store.readings)
    await r.history.load_profile()
    new = r.store.readings[before:]
    assert sorted({x.freeze_time.astimezone(TZ).replace(tzinfo=None) for x in new}) == [
        datetime(2026, 3, 17, 10, 15),
        datetime(2026, 3, 17, 10, 30),
    ]
    # and with nothing due the bus is not used at all
    asked = len(r.requests)
    await r.history.load_profile()
    assert len(r.requests) == asked


async def test_long_load_profile_replies_come_in_follow_up_frames_and_are_joined(rig) -> None:
    r = rig("follow-up")
    report = await r.history.load_profile()
    assert report.collected == [A]
    assert len(r.asked(ReadFollowUp)) >= 4  # 40 value bytes a frame: every read needs several
    got = stored_records(r)
    assert len(got) == 8
    last = max(got)
    truth = truth_records(r, 4, last - timedelta(minutes=15))[last]
    assert got[last][TOTAL] == truth[TOTAL] and got[last]["voltage.a"] is not None


async def test_a_1997_meter_gives_settlement_values_and_costs_no_bus_time_for_a_profile(
    rig,
) -> None:
    r = rig("dlt645-1997", "dlt645-1997")
    profile = await r.history.load_profile()
    assert profile.unsupported == [A] and profile.due == 0 and r.requests == []
    report = await r.history.settlements(3)  # 1997 meters keep two periods: the third is not asked
    assert report.collected == [A]
    got = r.store.of(ReadingKind.SETTLEMENT)
    instants = sorted({x.freeze_time for x in got})
    assert [i.astimezone(TZ).replace(tzinfo=None) for i in instants] == [
        datetime(2026, 2, 1), datetime(2026, 3, 1)
    ]  # fmt: skip
    ts = r.clock.now().timestamp()
    layout = find_data_id(0x9410, r.poller.meters[A].driver.version).layout  # type: ignore[attr-defined]
    for n, instant in ((1, instants[1]), (2, instants[0])):
        truth = settlement_values(r.meter, n, ts)
        stored = {x.quantity: x.value for x in got if x.freeze_time == instant}
        assert stored[TOTAL] == fit(layout, truth[TOTAL], TOTAL)
        assert {f"energy.active.import.t{t}" for t in range(1, 5)} <= set(stored)
    assert {(type(q).__name__, getattr(q, "di", 0)) for q in r.requests} == {
        ("ReadData", 0x941F), ("ReadData", 0x981F)
    }  # fmt: skip
    # read once: the next run asks nothing
    asked = len(r.requests)
    again = await r.history.settlements(3)
    assert again.collected == [A] and len(r.requests) == asked and not again.stored


async def test_a_meter_without_block_support_gives_settlement_values_by_single_identifiers(
    rig,
) -> None:
    r = rig("no-blocks")
    report = await r.history.settlements(1)
    assert report.collected == [A]
    stored = {x.quantity: x.value for x in r.store.of(ReadingKind.SETTLEMENT)}
    truth = settlement_values(r.meter, 1, r.clock.now().timestamp())
    assert stored[TOTAL] == fit(find_data_id(0x00010001).layout, truth[TOTAL], TOTAL)  # type: ignore[union-attr]
    dis = [q.di for q in r.asked(ReadData)]
    assert dis[0] == 0x0001FF01 and 0x00010001 in dis and 0x00010401 in dis


async def test_a_meter_without_load_profile_is_refused_and_not_asked_again_for_a_day(rig) -> None:
    r = rig(load_profile=False)
    report = await r.history.load_profile()
    assert report.refused == [A] and report.collected == [] and not r.store.readings
    asked = len(r.requests)
    r.clock.advance(3600)
    again = await r.history.load_profile()
    assert again.refused == [A] and len(r.requests) == asked  # not asked within a day
    r.clock.advance(86400)
    await r.history.load_profile()
    assert len(r.requests) > asked


async def test_a_settlement_just_after_the_instant_waits_for_the_next_run(rig) -> None:
    # ten minutes after the settlement instant
    r = rig(start=datetime(2026, 4, 1, 0, 10, tzinfo=TZ))
    early = await r.history.settlements(2)
    # which period a meter calls "the last" is uncertain right after the instant: nothing read
    assert early.due == 0 and r.requests == [] and r.store.readings == []
    r.clock.advance(3600)
    await r.history.settlements(2)
    instants = {x.freeze_time.astimezone(TZ).replace(tzinfo=None) for x in r.store.readings}
    assert instants == {datetime(2026, 3, 1), datetime(2026, 4, 1)}
    # the period the meter calls "last" is the one the gateway stamped 1 April
    ts = r.clock.now().timestamp()
    truth = settlement_values(r.meter, 1, ts)[TOTAL]
    stored = next(
        x.value for x in r.store.readings
        if x.quantity == TOTAL and x.freeze_time == datetime(2026, 4, 1, tzinfo=TZ)
    )  # fmt: skip
    assert stored == fit(find_data_id(0x00010001).layout, truth, TOTAL)  # type: ignore[union-attr]


def test_settlement_instants_count_back_whole_months() -> None:
    now = datetime(2026, 1, 15, 9, 0)
    assert settlement_instant(now, 1, 1, 0) == datetime(2026, 1, 1)
    assert settlement_instant(now, 2, 1, 0) == datetime(2025, 12, 1)
    assert settlement_instant(now, 13, 1, 0) == datetime(2025, 1, 1)
    assert settlement_instant(datetime(2026, 1, 10, 9, 0), 1, 20, 12) == datetime(2025, 12, 20, 12)
