"""Group commits: one transaction per bus sweep (or per interval), never a published-first record."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta
from typing import Any

import pytest

from gateway.bus.link import MemoryLink
from gateway.bus.worker import BusWorker
from gateway.config import MeterConfig
from gateway.polling import Group, Poller
from gateway.polling.drivers import make_driver
from gateway.store import Store
from gateway.store.group import GroupCommit
from protocols.model import Event, EventType
from tests.gateway.conftest import START, meter_ids, sweep
from tests.gateway.polling.test_poll_dlt645 import FAST, ZONE, Bus, FakeMeter


class Ticker:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def event(meter: str) -> Event:
    return Event(meter=meter, type=EventType.METER_COVER_OPEN, start=START, detected=START)


async def test_a_group_commits_readings_events_and_state_in_one_transaction(store: Store) -> None:
    group = GroupCommit(store)
    before = store.commits
    group.add_readings(sweep(meter_ids(20), START))
    group.add_events([event("202611200001")])
    group.set_state("events:202611200001", {"n": 1})
    assert store.last_seq == 0  # nothing on the card yet
    last = await group.flush()
    assert store.commits - before == 1
    assert last == store.last_seq == 21  # 20 reading records + 1 event, gap-free
    assert store.get_state("events:202611200001") == {"n": 1}
    assert await group.flush() is None and store.commits - before == 1  # nothing pending


async def test_state_written_to_the_group_is_read_back_before_and_during_the_commit(
    store: Store,
) -> None:
    gate, entered = threading.Event(), threading.Event()
    commit = store.commit_group

    def slow_commit(records: Any, states: Any) -> int:
        entered.set()
        gate.wait(5)
        return commit(records, states)

    store.commit_group = slow_commit  # type: ignore[method-assign]
    group = GroupCommit(store)
    group.set_state("k", 1)
    assert group.get_state("k") == 1 and store.get_state("k") is None
    flushing = asyncio.create_task(group.flush())
    await asyncio.to_thread(entered.wait, 5)
    assert group.get_state("k") == 1  # being committed: still the newest value
    group.set_state("k", 2)
    assert group.get_state("k") == 2
    gate.set()
    await flushing
    assert store.get_state("k") == 1 and group.get_state("k") == 2
    await group.flush()
    assert store.get_state("k") == 2


async def test_nothing_is_announced_to_the_uplink_before_its_commit(store: Store) -> None:
    heard: list[tuple[int, int]] = []
    store.add_listener(lambda last: heard.append((last, store.last_seq)))
    group = GroupCommit(store)
    group.add_readings(sweep(meter_ids(3), START))
    assert heard == []
    await group.flush()
    assert heard == [(3, 3)]  # heard only once the rows were there to read


async def test_a_failed_commit_keeps_everything_in_order_for_the_next_one(store: Store) -> None:
    group = GroupCommit(store)
    commit = store.commit_group
    calls = {"n": 0}

    def failing_once(records: Any, states: Any) -> int:
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError("card busy")
        return commit(records, states)

    store.commit_group = failing_once  # type: ignore[method-assign]
    first = sweep(meter_ids(2), START)
    group.add_readings(first)
    group.set_state("k", "a")
    with pytest.raises(OSError):
        await group.flush()
    second = sweep(meter_ids(2), START + timedelta(minutes=15), base=10)
    group.add_readings(second)
    assert await group.flush() == 4
    meters_times = [(r.record().meter, r.record().gateway_time) for r in store.pending(0, 10)]
    assert meters_times == [(r.meter, r.gateway_time) for r in (first + second)[::5]]
    assert store.get_state("k") == "a"


async def test_a_cancelled_flush_still_finishes_its_commit_and_never_repeats_it(
    store: Store,
) -> None:
    gate, entered = threading.Event(), threading.Event()
    commit = store.commit_group

    def slow_commit(records: Any, states: Any) -> int:
        entered.set()
        gate.wait(5)
        return commit(records, states)

    store.commit_group = slow_commit  # type: ignore[method-assign]
    group = GroupCommit(store)
    group.add_readings(sweep(meter_ids(2), START))
    task = asyncio.create_task(group.flush())
    await asyncio.to_thread(entered.wait, 5)
    task.cancel()
    await asyncio.sleep(0.05)
    gate.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert store.last_seq == 2 and group.pending == 0
    assert await group.flush() is None and store.last_seq == 2


def test_due_after_the_interval_only_with_something_pending(store: Store) -> None:
    tick = Ticker()
    group = GroupCommit(store, seconds=10, monotonic=tick)
    assert not group.due()
    group.add_readings(sweep(meter_ids(1), START))
    tick.now = 9.9
    assert not group.due()
    tick.now = 10
    assert group.due()


# -- the poller with group commits ------------------------------------------------------------


@pytest.fixture
async def twenty_meters(store: Store):
    meters = [FakeMeter(f"0000000000{n:02d}", f"{100 + n}.5") for n in range(1, 21)]
    worker = BusWorker("bus1", MemoryLink(Bus(*meters)), FAST, retries=0)
    worker.start()
    yield meters, worker
    await worker.stop()


def make_poller(store: Store, worker: BusWorker, clock: Any, groups: Any) -> Poller:
    poller = Poller(
        {"bus1": worker}, clock, store, make_driver, zone=ZONE, state=store, batches=groups
    )
    poller.set_meters(
        [MeterConfig(bus="bus1", protocol="dlt645-2007", address=f"0000000000{n:02d}")
         for n in range(1, 21)]
    )
    return poller


async def test_a_bus_sweep_of_twenty_meters_is_one_commit_not_forty(
    store: Store, twenty_meters: Any, clock: Any
) -> None:
    _meters, worker = twenty_meters
    direct = make_poller(store, worker, clock, None)
    before = store.commits
    await direct.sweep(Group.EVENTS)
    per_meter = store.commits - before
    grouped = make_poller(store, worker, clock, lambda bus: GroupCommit(store, seconds=3600))
    clock.advance(300)
    before = store.commits
    report = await grouped.sweep(Group.EVENTS)
    assert report.read == 20
    assert per_meter >= 20  # today: a commit per visit and one per meter's state
    assert store.commits - before == 1
    events_state = store.get_state("events:000000000001")
    assert events_state is not None  # the meter's counters went with the group
    rows = [r.record() for r in store.pending(0, 1000)]
    assert {r.meter for r in rows if hasattr(r, "values")} >= {f"0000000000{n:02d}" for n in (1, 20)}


async def test_a_sweep_longer_than_the_interval_commits_between_meters(
    store: Store, twenty_meters: Any, clock: Any
) -> None:
    _meters, worker = twenty_meters
    tick = Ticker()

    class Group5(GroupCommit):
        def add_readings(self, readings: Any, command: str | None = None) -> None:
            super().add_readings(readings, command)
            tick.now += 1  # each visit takes a second

    poller = make_poller(store, worker, clock, lambda bus: Group5(store, 5, tick))
    before = store.commits
    await poller.sweep(Group.ENERGY)
    # a commit every 5 visits (each 1 s) and the rest at the end of the sweep
    assert store.commits - before == 4
    assert store.last_seq == 20


async def test_grouped_records_are_the_records_the_direct_path_stores(
    store: Store, twenty_meters: Any, clock: Any, tmp_path: Any
) -> None:
    _meters, worker = twenty_meters
    other = Store.open(tmp_path / "direct.db", clock=clock)
    try:
        await make_poller(other, worker, clock, None).sweep(Group.ENERGY)
        await make_poller(store, worker, clock, lambda bus: GroupCommit(store)).sweep(Group.ENERGY)
        direct = [(r.seq, r.body) for r in other.pending(0, 1000)]
        grouped = [(r.seq, r.body) for r in store.pending(0, 1000)]
        assert grouped == direct and len(grouped) == 20
    finally:
        other.close()
