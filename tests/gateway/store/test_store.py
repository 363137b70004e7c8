"""The local store: durability settings, gap-free seqs, acknowledgement, local bookkeeping."""

from __future__ import annotations

import re
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from gateway.errors import StoreClosedError, StoreCorruptError, StoreError
from gateway.store import Store
from protocols.model import Event, EventType
from protocols.uplink import (
    Ack,
    EventRecord,
    ReadingRecord,
    reading_record_to_readings,
    readings_to_records,
)
from tests.gateway.conftest import START, frozen, meter_ids, sweep


def all_seqs(store: Store) -> list[int]:
    return [r.seq for r in store.records(0, 10**9)]


def test_durability_settings(store: Store) -> None:
    assert store.pragma("journal_mode") == "wal"
    assert store.pragma("synchronous") in (2, 3)  # FULL or EXTRA: committed rows survive power loss
    raw = sqlite3.connect(store.path)  # the mode is persistent in the file, not just our connection
    try:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        raw.close()


def test_epoch_is_random_hex_and_survives_reopen(tmp_path: Path, clock) -> None:
    first = Store.open(tmp_path / "a.db", clock=clock)
    epoch = first.epoch
    first.close()
    assert re.fullmatch(r"[0-9a-f]{16}", epoch)
    with Store.open(tmp_path / "a.db", clock=clock) as again:
        assert again.epoch == epoch
    with Store.open(tmp_path / "b.db", clock=clock) as other:
        assert other.epoch != epoch


def test_a_sweep_becomes_consecutive_records_with_the_readings_intact(store: Store) -> None:
    readings = sweep(meter_ids(3), START)
    assert store.append_readings(readings) == 3
    assert store.append_readings(sweep(meter_ids(2), START + timedelta(minutes=15))) == 5
    pending = store.pending(0, 100)
    assert [p.seq for p in pending] == [1, 2, 3, 4, 5]
    records = [p.record() for p in pending[:3]]
    assert records == readings_to_records(readings)
    back = [
        r
        for rec in records
        if isinstance(rec, ReadingRecord)
        for r in reading_record_to_readings(rec)
    ]
    assert sorted(back, key=repr) == sorted(readings, key=repr)


def test_seqs_continue_gap_free_across_reopen(tmp_path: Path, clock) -> None:
    path = tmp_path / "s.db"
    with Store.open(path, clock=clock) as s:
        s.append_readings(sweep(meter_ids(4), START))
        s.append_events([Event("202611200001", EventType.METER_COVER_OPEN, START, detected=START)])
    with Store.open(path, clock=clock) as s:
        assert s.append_readings(sweep(meter_ids(2), START)) == 7
        assert all_seqs(s) == list(range(1, 8))
        assert s.pending(4, 1)[0].record() == EventRecord(
            meter="202611200001", type=EventType.METER_COVER_OPEN, start=START, detected=START
        )


def test_empty_appends_write_nothing(store: Store) -> None:
    assert store.append_readings([]) == 0
    store.append_readings(sweep(meter_ids(1), START))
    assert store.append_events([]) == 1
    assert all_seqs(store) == [1]


def test_acknowledgement_covers_upto_and_ranges(store: Store) -> None:
    store.append_readings(sweep(meter_ids(10), START))
    outcome = store.acknowledge(Ack(epoch=store.epoch, upto=3, ranges=((6, 7),)))
    assert outcome.newly_acked == 5 and not outcome.stale_epoch
    assert [p.seq for p in store.pending(0, 100)] == [4, 5, 8, 9, 10]
    assert [p.seq for p in store.pending(5, 2)] == [8, 9]
    stats = store.stats()
    assert (stats.acked_upto, stats.first_unacked, stats.unacked, stats.records) == (3, 4, 5, 10)
    # nothing is deleted by an acknowledgement alone: re-sends can still be served
    assert [r.seq for r in store.records(2, 4)] == [2, 3, 4]
    assert store.acknowledge(Ack(epoch=store.epoch, upto=3)).newly_acked == 0


def test_ack_for_another_epoch_or_beyond_the_last_seq(store: Store) -> None:
    store.append_readings(sweep(meter_ids(3), START))
    assert store.acknowledge(Ack(epoch="0123456789abcdef", upto=3)).stale_epoch
    assert store.stats().unacked == 3
    outcome = store.acknowledge(Ack(epoch=store.epoch, upto=50))
    assert outcome.beyond_last and outcome.newly_acked == 3
    assert store.stats().acked_upto == 3  # clamped: seqs 4… are still to come
    store.append_readings(sweep(meter_ids(1), START))
    assert [p.seq for p in store.pending(0, 10)] == [4]


def test_byte_accounting_matches_the_rows(store: Store) -> None:
    store.append_readings(sweep(meter_ids(5), START))
    store.acknowledge(Ack(epoch=store.epoch, upto=2))
    stats = store.stats()
    assert stats.bytes == sum(len(r.body) + 64 for r in store.records(0, 100))
    assert stats.unacked_bytes == sum(len(r.body) + 64 for r in store.pending(0, 100))
    assert stats.file_bytes > 0


def test_frozen_bookkeeping(store: Store) -> None:
    meter = "202611200001"
    assert store.last_frozen(meter) is None
    day1, day2 = START - timedelta(days=2), START - timedelta(days=1)
    store.append_readings(frozen(meter, day2))
    store.append_readings(frozen(meter, day1))
    store.append_readings(sweep([meter], START))  # interval reads are not frozen records
    assert store.last_frozen(meter) == day2
    assert store.has_frozen(meter, day1) and store.has_frozen(meter, day2)
    assert not store.has_frozen(meter, START)
    assert not store.has_frozen("202611200002", day1)


def test_state_and_command_log_persist(tmp_path: Path, clock) -> None:
    path = tmp_path / "s.db"
    with Store.open(path, clock=clock) as s:
        s.set_state("events.202611200001.meter_cover", 3)
        s.set_state("events.202611200001.meter_cover", 4)
        s.set_state("archive", {"version": 7, "meters": ["a"]})
        s.log_command("c-1", "received")
        s.log_command("c-1", "executed", meter="202611200001", detail={"relay": "open"})
    with Store.open(path, clock=clock) as s:
        assert s.get_state("events.202611200001.meter_cover") == 4
        assert s.get_state("archive") == {"version": 7, "meters": ["a"]}
        assert s.get_state("nothing", "dflt") == "dflt"
        assert s.command_seen("c-1") and not s.command_seen("c-2")
        steps = s.command_log("c-1")
        assert [st["state"] for st in steps] == ["received", "executed"]
        assert steps[1]["detail"] == {"relay": "open"} and steps[1]["at"] == START


def test_listeners_hear_every_append(store: Store) -> None:
    heard: list[int] = []
    store.add_listener(heard.append)
    store.append_readings(sweep(meter_ids(2), START))
    store.append_events([Event("", EventType.CLOCK_DRIFT, START)])
    assert heard == [2, 3]


def test_closed_store_refuses_work(tmp_path: Path, clock) -> None:
    s = Store.open(tmp_path / "s.db", clock=clock)
    s.close()
    s.close()
    with pytest.raises(StoreClosedError):
        s.append_readings(sweep(meter_ids(1), START))


def test_garbage_file_is_a_typed_error(tmp_path: Path, clock) -> None:
    path = tmp_path / "garbage.db"
    path.write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(StoreCorruptError, match=r"garbage\.db"):
        Store.open(path, clock=clock)


def test_foreign_sqlite_file_is_refused(tmp_path: Path, clock) -> None:
    path = tmp_path / "other.db"
    raw = sqlite3.connect(path)
    raw.execute("CREATE TABLE t (x)")
    raw.commit()
    raw.close()
    with pytest.raises(StoreCorruptError, match="not a Taiqu gateway store"):
        Store.open(path, clock=clock)


def test_tiny_budget_is_refused(tmp_path: Path, clock) -> None:
    with pytest.raises(StoreError, match="too small"):
        Store.open(tmp_path / "s.db", clock=clock, budget_bytes=1000)
