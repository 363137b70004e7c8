"""Migration 0010: the per-record ``ingested`` table folds into ``streams.ranges`` exactly."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine, inspect, text

from headend.db.engine import reading, writing
from headend.db.migrate import upgrade
from headend.ingest.store import Ingestor
from headend.ingest.streams import held_runs
from protocols.uplink import Ack, ResendRequest, decode
from tests.headend.gen import batch, publishable
from tests.headend.gen import reading as interval_reading

NOW = datetime(2026, 11, 24, 6, tzinfo=UTC)
E1, E2 = "e1e1e1e1e1e1e1e1", "e2e2e2e2e2e2e2e2"


def as_before_0010(engine: Engine) -> None:
    """Put the database back in the pre-0010 shape, holding what an old ingest left."""
    stamp = {"t": NOW}
    with writing(engine) as conn:
        conn.exec_driver_sql("DELETE FROM schema_version WHERE version = 10")
        conn.exec_driver_sql("ALTER TABLE streams DROP COLUMN ranges")
        conn.exec_driver_sql(
            "CREATE TABLE ingested (gateway VARCHAR(64), epoch VARCHAR(32), seq BIGINT, "
            "PRIMARY KEY (gateway, epoch, seq))"
        )
        streams = [("gw-1", E1, 1, 4, 12), ("gw-2", E2, 20, 20, 20)]
        for gw, epoch, base, upto, highest in streams:
            conn.execute(
                text(
                    "INSERT INTO streams (gateway, epoch, base, upto, highest, first_received, "
                    "last_received) VALUES (:g, :e, :b, :u, :h, :t, :t)"
                ),
                {"g": gw, "e": epoch, "b": base, "u": upto, "h": highest, **stamp},
            )
        seqs = [("gw-1", E1, s) for s in (3, 4, 7, 8, 12)] + [("gw-2", E2, 20)]
        for gw, epoch, seq in seqs:  # 1-2 pruned already (covered by base..upto)
            conn.execute(
                text("INSERT INTO ingested VALUES (:g, :e, :s)"), {"g": gw, "e": epoch, "s": seq}
            )
        conn.execute(  # record 12 announced 9-10 lost
            text(
                'INSERT INTO gaps (gateway, epoch, seq, "first", "last", reason, readings, '
                "events, received) VALUES ('gw-1', :e, 12, 9, 10, 'disk budget exceeded', 0, 0, :t)"
            ),
            {"e": E1, **stamp},
        )


def store(engine: Engine, b):  # type: ignore[no-untyped-def]
    with writing(engine) as conn:
        return Ingestor(resend_after=0.0).handle(conn, *publishable(b), NOW)


def test_ingested_rows_and_open_gaps_become_runs_and_nothing_is_stored_twice(
    engine: Engine,
) -> None:
    as_before_0010(engine)
    assert upgrade(engine) == [10]
    with reading(engine) as conn:
        assert not inspect(conn).has_table("ingested")
        assert held_runs(conn, "gw-1", E1) == [(1, 4), (7, 10), (12, 12)]
        assert held_runs(conn, "gw-2", E2) == [(20, 20)]
        ranges = conn.exec_driver_sql("SELECT ranges FROM streams ORDER BY gateway").scalars()
        assert list(ranges) == ["7-10,12-12", ""]
    m = "202600000001"
    again = store(
        engine, batch("gw-1", E1, 1, [interval_reading(m, s) for s in range(8)])
    )  # seqs 1-8
    assert (again.records, again.duplicates) == (2, 6)  # only 5 and 6 are new
    (ack,) = [decode(p, Ack) for t, p in again.publish if t.endswith("/ack")]
    assert (ack.upto, ack.ranges) == (10, ((12, 12),))
    assert [decode(p, ResendRequest) for t, p in again.publish if t.endswith("/resend")] == [
        ResendRequest(epoch=E1, first=11, last=11)
    ]
    with reading(engine) as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM readings").scalar_one() == 2 * 5
    done = store(engine, batch("gw-1", E1, 11, [interval_reading(m, 20)]))
    (ack,) = [decode(p, Ack) for t, p in done.publish if t.endswith("/ack")]
    assert (ack.upto, ack.ranges) == (12, ())


def test_a_fresh_database_gets_the_column_and_no_ingested_table(engine: Engine) -> None:
    with reading(engine) as conn:
        assert "ranges" in {c["name"] for c in inspect(conn).get_columns("streams")}
        assert not inspect(conn).has_table("ingested")
