"""Readings written per group from the columns: dead letters, re-reported readings, stream runs."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

import headend.db.bulk as bulk
from headend.config import DatabaseSettings, MqttSettings, Settings
from headend.db.bulk import ReadingSink
from headend.db.engine import writing
from headend.db.tables import dead_letters, readings, streams
from headend.ingest.service import IngestService, Received
from headend.ingest.store import Ingestor, Outcome
from headend.ingest.streams import held_runs
from protocols.uplink import Ack, Topics, decode, encode
from tests.headend.gen import batch, meter_ids, publishable, reading, reading_batches

NOW = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)
GW, EPOCH = "gw-0001", "5f0c2a9e41d7b3c8"


def count(engine: Engine, table: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def store(engine: Engine, ing: Ingestor, topic: str, payload: bytes) -> Outcome:
    with writing(engine) as conn:
        return ing.handle(conn, topic, payload, NOW)


def ack_of(outcome: Outcome) -> Ack:
    (ack,) = [decode(p, Ack) for t, p in outcome.publish if t.endswith("/down/ack")]
    return ack


def sweep_payload(**changes: Any) -> bytes:
    """A gateway's sweep batch (3 meters) as JSON, with ``changes`` applied to the sweep."""
    b = batch(GW, EPOCH, 0, [reading(m, 0) for m in meter_ids(3)])
    body = json.loads(encode(b, compress=False))
    assert body["records"][0]["r"] == "sw"
    body["records"][0].update(changes)
    return json.dumps(body).encode()


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"rows": [["202600000001", 0, 0, "1.0", "2.0", "3.0", "4.0", "NaN"]]}, "decimal"),
        (
            {"rows": [["2026 0001", 0, 0, "1.0", "2.0", "3.0", "4.0", "5.0"]]},
            "records.0.rd.m: string should match pattern",
        ),
        ({"qs": ["energy.banana"] * 5}, "unknown quantities"),
        ({"gt": "2026-11-24T00:00:00"}, "sweep record"),
    ],
    ids=["nan value", "bad meter id", "unknown quantity", "naive time"],
)
def test_a_malformed_sweep_is_dead_lettered_with_its_reason_and_stores_nothing(
    engine: Engine, changes: dict[str, Any], reason: str
) -> None:
    payload = sweep_payload(**changes)
    outcome = store(engine, Ingestor(), Topics(GW).data, payload)
    assert outcome.kind == "dead"
    with engine.connect() as conn:
        row = conn.execute(select(dead_letters)).one()
        assert held_runs(conn, GW, EPOCH) == []
    assert reason.lower() in row.reason.lower() and row.payload == payload
    assert count(engine, readings) == 0


def test_a_reading_reported_again_by_another_record_is_stored_once(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A re-flashed gateway (new epoch) re-sends readings already stored: no error, no copy."""
    fallbacks: list[int] = []
    fallback = bulk._insert_ignoring_stored
    monkeypatch.setattr(
        bulk,
        "_insert_ignoring_stored",
        lambda c, rows: fallbacks.append(len(rows)) or fallback(c, rows),
    )
    ing = Ingestor()
    ms = meter_ids(4)
    store(engine, ing, *publishable(batch(GW, EPOCH, 0, [reading(m, 0) for m in ms[:2]])))
    again = batch(GW, "0123456789abcdef", 0, [reading(m, 0) for m in ms])  # 2 old + 2 new
    with writing(engine) as conn:
        sink = ReadingSink(conn)
        outcome = ing.handle(conn, *publishable(again), NOW, False, sink)
        assert sink.flush() == 4 * 5  # on PostgreSQL the COPY meets the stored rows: it falls back
    assert (outcome.records, outcome.duplicates) == (4, 0)
    assert count(engine, readings) == 4 * 5
    assert ack_of(outcome) == Ack(epoch="0123456789abcdef", upto=3)
    assert fallbacks == ([] if engine.dialect.name == "sqlite" else [4 * 5])


def test_stream_runs_hold_out_of_order_batches_across_a_restart(engine: Engine) -> None:
    ms = meter_ids(30)
    parts = [batch(GW, EPOCH, s, [reading(m, 0) for m in ms[s : s + 5]]) for s in (0, 10, 20, 5)]
    for b in parts[:3]:
        store(engine, Ingestor(), *publishable(b))
    with engine.connect() as conn:
        row = conn.execute(select(streams.c.base, streams.c.upto, streams.c.ranges)).one()
    assert tuple(row) == (0, 4, "10-14,20-24")
    out = store(engine, Ingestor(), *publishable(parts[3]))  # a new process fills 5-9
    assert ack_of(out) == Ack(epoch=EPOCH, upto=14, ranges=((20, 24),))
    again = store(engine, Ingestor(), *publishable(parts[1]))  # re-delivered after a restart
    assert (again.records, again.duplicates) == (0, 5)
    assert count(engine, readings) == 20 * 5


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def ack(self, mid: int, qos: int) -> None:
        self.calls.append(("puback", mid))

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None:
        self.calls.append(("publish", topic))


def test_a_group_is_written_with_one_statement_before_its_pubacks(
    db_settings: DatabaseSettings, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = IngestService(engine, Settings(database=db_settings, mqtt=MqttSettings()))
    recorder = Recorder()
    service._client = recorder  # type: ignore[assignment]
    writes: list[int] = []
    write = bulk.write_readings

    def spy(conn: Any, rows: Any) -> None:
        writes.append(len(rows))
        assert not recorder.calls  # nothing acknowledged before the rows are written
        write(conn, rows)

    monkeypatch.setattr(bulk, "write_readings", spy)
    group = [
        Received(*publishable(b), mid=i, qos=1, retain=False, generation=0)
        for i, b in enumerate(reading_batches(GW, EPOCH, meter_ids(6), steps=2, per_batch=3))
    ]
    group.insert(2, Received(Topics(GW).data, b"\x78garbage", 99, 1, False, 0))
    service._store(group)
    assert writes == [4 * 3 * 5]  # four batches' readings, one statement
    assert [mid for kind, mid in recorder.calls if kind == "puback"] == [0, 1, 99, 2, 3]
    assert count(engine, readings) == 4 * 3 * 5 and count(engine, dead_letters) == 1


def test_a_row_the_database_refuses_dead_letters_only_its_message(
    db_settings: DatabaseSettings, engine: Engine
) -> None:
    service = IngestService(engine, Settings(database=db_settings, mqtt=MqttSettings()))
    service._client = Recorder()  # type: ignore[assignment]
    good = reading_batches(GW, EPOCH, meter_ids(4), steps=1, per_batch=2)
    long_state = batch("gw-0002", EPOCH, 0, [reading("202600000001", 0, ("relay.state",))])
    body = json.loads(encode(long_state, compress=False))
    body["records"][0]["q"]["relay.state"] = "x" * 65  # fits the contract, not the column
    group = [
        Received(*publishable(good[0]), 1, 1, False, 0),
        Received(Topics("gw-0002").data, json.dumps(body).encode(), 2, 1, False, 0),
        Received(*publishable(good[1]), 3, 1, False, 0),
    ]
    service._store(group)
    if engine.dialect.name == "sqlite":  # SQLite keeps any length: all stored
        assert count(engine, readings) == 4 * 5 + 1
        return
    assert count(engine, readings) == 4 * 5
    with engine.connect() as conn:
        reason = conn.execute(select(dead_letters.c.reason)).scalar_one()
        assert held_runs(conn, "gw-0002", EPOCH) == []
    assert "storage refused" in reason


def test_one_reading_twice_in_one_group_is_stored_once(engine: Engine) -> None:
    """Two gateways report the same meter's reading (it moved buses): one group, one row."""
    ing = Ingestor()
    same = [reading("202600000001", 0)]
    with writing(engine) as conn:
        sink = ReadingSink(conn)
        a = ing.handle(conn, *publishable(batch("gw-a", EPOCH, 0, same)), NOW, False, sink)
        b = ing.handle(conn, *publishable(batch("gw-b", EPOCH, 0, same)), NOW, False, sink)
        sink.flush()
    assert (a.records, b.records) == (1, 1)
    assert count(engine, readings) == 5
    with engine.connect() as conn:
        assert [held_runs(conn, gw, EPOCH) for gw in ("gw-a", "gw-b")] == [[(0, 0)]] * 2


def test_a_database_outage_while_writing_readings_is_retried_not_dead_lettered(
    db_settings: DatabaseSettings, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The driver's own error (below SQLAlchemy) still reads as an outage: nothing acknowledged."""
    import sqlite3

    import psycopg
    from sqlalchemy.exc import OperationalError

    service = IngestService(engine, Settings(database=db_settings, mqtt=MqttSettings()))
    recorder = Recorder()
    service._client = recorder  # type: ignore[assignment]

    def lost(*_: Any) -> None:
        if engine.dialect.name == "sqlite":
            raise sqlite3.OperationalError("database or disk is full")
        raise psycopg.OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(bulk, "_executemany" if engine.dialect.name == "sqlite" else "_copy", lost)
    group = [
        Received(*publishable(b), mid=i, qos=1, retain=False, generation=0)
        for i, b in enumerate(reading_batches(GW, EPOCH, meter_ids(4), steps=1, per_batch=2))
    ]
    with pytest.raises(OperationalError):
        service._store(group)  # the worker loop backs off and retries the same group
    assert recorder.calls == []
    assert count(engine, dead_letters) == 0 and count(engine, readings) == 0
    monkeypatch.undo()
    service._store(group)
    assert count(engine, readings) == 4 * 5
    assert [mid for kind, mid in recorder.calls if kind == "puback"] == [0, 1]
