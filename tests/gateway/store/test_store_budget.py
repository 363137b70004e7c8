"""The disk budget: acknowledged data is pruned first; unacknowledged overflow is announced."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.errors import StoreError
from gateway.store import Store
from protocols.model import EventType
from protocols.uplink import Ack, EventRecord, GapRecord, ReadingRecord, readings_to_records
from taiqu.clock import ManualClock
from tests.gateway.conftest import START, meter_ids, sweep

BUDGET = 64 * 1024


def fill(store: Store, sweeps: int, meters: int = 10, start: int = 0) -> int:
    last = 0
    for n in range(start, start + sweeps):
        last = store.append_readings(sweep(meter_ids(meters), START + timedelta(minutes=15 * n)))
    return last


def gaps(store: Store) -> list[GapRecord]:
    return [r.record() for r in store.records(0, 10**9) if r.type == "gap"]  # type: ignore[misc]


def test_acknowledged_rows_are_pruned_oldest_first(tmp_path: Path, clock: ManualClock) -> None:
    store = Store.open(tmp_path / "s.db", clock=clock, budget_bytes=BUDGET)
    acked = fill(store, 12)
    store.acknowledge(Ack(epoch=store.epoch, upto=acked))
    last = fill(store, 10, start=12)
    stats = store.stats()
    assert stats.bytes <= BUDGET and stats.pruned_records > 0 and stats.dropped_records == 0
    seqs = [r.seq for r in store.records(0, 10**9)]
    assert seqs == list(range(seqs[0], last + 1))  # a contiguous tail: the oldest went first
    assert seqs[0] > 1
    assert [p.seq for p in store.pending(0, 10**6)] == list(range(acked + 1, last + 1))
    assert gaps(store) == []
    store.close()


def test_unacknowledged_overflow_drops_oldest_with_a_gap_and_an_event(
    tmp_path: Path, clock: ManualClock
) -> None:
    store = Store.open(tmp_path / "s.db", clock=clock, budget_bytes=BUDGET)
    fill(store, 5)
    store.acknowledge(Ack(epoch=store.epoch, upto=30))  # 1…30 are safe at the head-end
    before = store.last_seq
    last = fill(store, 25, start=5)
    stats = store.stats()
    assert stats.bytes <= BUDGET and stats.dropped_records > 0
    [gap] = gaps(store)
    # acknowledged rows went first: the dropped range starts right after them
    assert gap.first == 31 and gap.last == 30 + stats.dropped_records
    assert gap.readings == 5 * stats.dropped_records and gap.events == 0
    assert "disk budget" in gap.reason
    rows = store.records(0, 10**9)
    by_seq = {r.seq: r for r in rows}
    assert all(s in by_seq for s in range(gap.last + 1, before + 1))  # the rest is intact
    announcement = [r for r in rows if r.type in ("gap", "ev")]
    assert [r.type for r in announcement] == ["gap", "ev"]
    event = announcement[1].record()
    assert isinstance(event, EventRecord) and event.type is EventType.GAP_ANNOUNCED
    assert event.details["ranges"] == [[gap.first, gap.last]]
    assert event.details["readings"] == gap.readings
    assert gap.last < announcement[0].seq < last  # announced in the stream, after what it drops
    store.close()


def test_dropped_gap_announcements_are_re_announced(tmp_path: Path, clock: ManualClock) -> None:
    store = Store.open(tmp_path / "s.db", clock=clock, budget_bytes=BUDGET)
    fill(store, 200)  # many budget passes, nothing acknowledged
    last = store.last_seq
    present = {r.seq for r in store.records(0, 10**9)}
    covered = set().union(*(range(g.first, g.last + 1) for g in gaps(store)))
    assert set(range(1, last + 1)) == present | covered  # every seq is there or announced
    assert store.stats().bytes <= BUDGET
    store.close()


op = st.one_of(
    st.tuples(st.just("append"), st.integers(1, 25)),
    st.tuples(st.just("ack"), st.floats(0, 1)),
    st.tuples(st.just("range"), st.floats(0, 1), st.integers(0, 40)),
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=st.lists(op, min_size=1, max_size=25))
def test_every_seq_is_stored_acknowledged_or_announced(tmp_path_factory, ops) -> None:
    clock = ManualClock(START)
    store = Store.open(tmp_path_factory.mktemp("h") / "s.db", clock=clock, budget_bytes=BUDGET)
    appended: dict[int, bytes] = {}
    acked: set[int] = set()
    announced: set[int] = set()
    try:
        for step, (name, *args) in enumerate(ops):
            clock.advance(900)
            last = store.last_seq
            if name == "append":
                readings = sweep(meter_ids(args[0]), clock.now(), base=step)
                store.append_readings(readings)
                for i, record in enumerate(readings_to_records(readings)):
                    appended[last + 1 + i] = record.model_dump_json(
                        by_alias=True, exclude_none=True
                    ).encode()
            else:
                upto = int(args[0] * last)
                ranges = ((upto + 2, upto + 2 + args[1]),) if name == "range" else ()
                for r in store.records(0, upto) + [
                    x for a, b in ranges for x in store.records(a, b)
                ]:
                    if r.type == "gap":
                        g = r.record()
                        announced |= set(range(g.first, g.last + 1))
                store.acknowledge(Ack(epoch=store.epoch, upto=upto, ranges=ranges))
                acked |= set(range(1, upto + 1)) | {
                    s for a, b in ranges for s in range(a, min(b, last) + 1)
                }
            rows = store.records(0, 10**9)
            seqs = [r.seq for r in rows]
            assert seqs == sorted(set(seqs)) and (not seqs or seqs[-1] == store.last_seq)
            for r in rows:
                if r.seq in appended:
                    assert r.body == appended[r.seq]
                    assert isinstance(r.record(), ReadingRecord)
                if r.type == "gap":
                    g = r.record()
                    announced |= set(range(g.first, g.last + 1))
            missing = set(range(1, store.last_seq + 1)) - set(seqs) - acked - announced
            assert missing == set()
            stats = store.stats()
            assert stats.bytes == sum(len(r.body) + 64 for r in rows) <= BUDGET
            assert stats.unacked_bytes == sum(len(r.body) + 64 for r in store.pending(0, 10**9))
    finally:
        store.close()


WEEK_BUDGET = 2 * 1024 * 1024


def week_outage(path: Path, clock: ManualClock, drop_fraction: float) -> tuple[Store, int]:
    """A simulated week of 15-minute sweeps of 40 meters, nothing acknowledged, 2 MiB budget;
    the store and the number of readings appended."""
    store = Store.open(path, clock=clock, budget_bytes=WEEK_BUDGET, drop_fraction=drop_fraction)
    appended = 0
    for n in range(7 * 96):
        readings = sweep(meter_ids(40), START + timedelta(minutes=15 * n), base=n)
        appended += sum(len(r.values) for r in readings_to_records(readings))
        store.append_readings(readings)
    return store, appended


def test_a_week_over_budget_drops_in_large_chunks(tmp_path: Path, clock: ManualClock) -> None:
    old, _ = week_outage(tmp_path / "old.db", clock, 0.01)  # the former 1 % (32 KiB floor)
    store, appended = week_outage(tmp_path / "s.db", clock, 0.10)
    rows = store.records(0, 10**9)
    found = gaps(store)
    stats = store.stats()
    # every seq is stored or announced, every reading stored or counted in a gap; exact bytes
    covered = set().union(*(range(g.first, g.last + 1) for g in found))
    assert set(range(1, stats.last_seq + 1)) == {r.seq for r in rows} | covered
    stored = sum(len(r.record().values) for r in rows if r.type == "rd")  # type: ignore[union-attr]
    assert stored + sum(g.readings for g in found) == appended
    assert stats.bytes == stats.unacked_bytes == sum(len(r.body) + 64 for r in rows) <= WEEK_BUDGET
    # each pass frees a tenth of the budget (announcing at most two ranges: split only around
    # an earlier pass's gap record), so the announcements scale with overflow ÷ chunk
    dropped_bytes = stats.dropped_records * max(len(r.body) + 64 for r in rows if r.type == "rd")
    assert len(found) <= 2 * (dropped_bytes // (0.10 * WEEK_BUDGET) + 1)
    assert len(found) * 3 <= len(gaps(old))  # six times the chunk: far fewer announcements
    old.close()
    store.close()


def test_the_drop_fraction_is_checked(tmp_path: Path, clock: ManualClock) -> None:
    for bad in (0.0, -0.1, 0.9):
        with pytest.raises(StoreError, match="drop_fraction"):
            Store.open(tmp_path / "s.db", clock=clock, budget_bytes=BUDGET, drop_fraction=bad)
