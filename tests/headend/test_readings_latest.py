"""``readings_latest`` (migration 0007): the trigger keeps the newest row per (meter, quantity).

On both backends, for every way rows reach ``readings`` (the ingest's bulk insert-or-ignore, a
plain Core insert, out-of-order and duplicate rows), the table equals "the row with the greatest
time per (meter, quantity)" computed from ``readings`` itself; the migration fills it for rows
stored before it ran; retention forgets the values whose rows it dropped.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, Engine, create_engine, func, insert, select, text

from headend.config import DatabaseSettings
from headend.db import make_engine
from headend.db.bulk import insert_ignore_many
from headend.db.engine import writing
from headend.db.migrate import discover, upgrade
from headend.db.tables import readings, readings_latest

T0 = datetime(2026, 3, 1, tzinfo=UTC)
_names = itertools.count()


def row(
    meter: str, quantity: str, minutes: int, value: str, kind: str = "interval"
) -> dict[str, Any]:
    t = T0 + timedelta(minutes=minutes)
    return {
        "meter": meter,
        "quantity": quantity,
        "time": t,
        "kind": kind,
        "value": value,
        "gateway": "gw-1",
        "gateway_time": t,
        "meter_time": None,
        "meter_time_raw": None,
        "freeze_time": None,
        "flags": "",
        "command": None,
    }


def latest(conn: Connection) -> dict[tuple[str, str], tuple[datetime, str]]:
    rows = conn.execute(select(readings_latest)).all()
    return {(r.meter, r.quantity): (r.time, r.value) for r in rows}


def newest_by_scan(conn: Connection) -> dict[tuple[str, str], datetime]:
    query = select(readings.c.meter, readings.c.quantity, func.max(readings.c.time)).group_by(
        readings.c.meter, readings.c.quantity
    )
    return {(m, q): t for m, q, t in conn.execute(query)}


def test_bulk_and_core_inserts_keep_the_newest_row(engine: Engine) -> None:
    with writing(engine) as conn:
        insert_ignore_many(
            conn,
            readings,
            [
                row("m1", "energy.active.import.total", 15, "10.5"),
                row("m1", "voltage.a", 15, "230"),
            ],
        )
    with writing(engine) as conn:  # an older row arrives late: the newest stays
        insert_ignore_many(conn, readings, [row("m1", "energy.active.import.total", 0, "10.0")])
    with writing(engine) as conn:  # a newer one replaces it, through a plain insert too
        conn.execute(insert(readings), [row("m1", "energy.active.import.total", 30, "11.0")])
    with writing(engine) as conn:  # a duplicate key the bulk insert skips changes nothing
        insert_ignore_many(conn, readings, [row("m1", "energy.active.import.total", 30, "99")])
    with engine.connect() as conn:
        got = latest(conn)
    assert got == {
        ("m1", "energy.active.import.total"): (T0 + timedelta(minutes=30), "11.0"),
        ("m1", "voltage.a"): (T0 + timedelta(minutes=15), "230"),
    }


def test_a_rolled_back_insert_leaves_no_latest_value(engine: Engine) -> None:
    with pytest.raises(RuntimeError), writing(engine) as conn:
        insert_ignore_many(conn, readings, [row("m1", "voltage.a", 0, "230")])
        raise RuntimeError("abort")
    with engine.connect() as conn:
        assert latest(conn) == {}


BATCH = st.lists(
    st.tuples(
        st.sampled_from(["m1", "m2", "m3"]), st.sampled_from(["q.a", "q.b"]), st.integers(0, 40)
    ),
    max_size=12,
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batches=st.lists(BATCH, min_size=1, max_size=5))
def test_latest_equals_max_over_readings(
    engine: Engine, batches: list[list[tuple[str, str, int]]]
) -> None:
    with writing(engine) as conn:
        conn.execute(readings.delete())
        conn.execute(readings_latest.delete())
    for batch in batches:
        with writing(engine) as conn:
            insert_ignore_many(conn, readings, [row(m, q, t, f"{t}.5") for m, q, t in batch])
    with engine.connect() as conn:
        got = latest(conn)
        want = newest_by_scan(conn)
    assert {k: t for k, (t, _) in got.items()} == want
    assert all(value == f"{int((t - T0).total_seconds() // 60)}.5" for t, value in got.values())


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An empty database of each backend, no migration applied."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'h.db'}"
    else:
        base: str = request.getfixturevalue("postgres_url")
        name = f"latest{next(_names)}"
        admin = create_engine(base, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {name}"))
        admin.dispose()
        url = base.rsplit("/", 1)[0] + f"/{name}"
    engine = make_engine(DatabaseSettings(url=url))
    yield engine
    engine.dispose()


def test_the_migration_fills_from_rows_stored_before_it(empty_engine: Engine) -> None:
    upgrade(empty_engine, [m for m in discover() if m.version < 7])
    with writing(empty_engine) as conn:
        conn.execute(
            insert(readings),
            [
                row("m1", "q.a", 0, "1"),
                row("m1", "q.a", 15, "2"),
                row("m1", "q.a", 15, "2f", kind="daily_frozen"),
                row("m2", "q.a", 5, "3"),
            ],
        )
    assert 7 in upgrade(empty_engine)
    with empty_engine.connect() as conn:
        got = latest(conn)
    assert got[("m2", "q.a")] == (T0 + timedelta(minutes=5), "3")
    assert got[("m1", "q.a")][0] == T0 + timedelta(minutes=15)  # either kind of that instant
    with writing(empty_engine) as conn:  # and the trigger runs from then on
        conn.execute(insert(readings), [row("m2", "q.a", 10, "4")])
    with empty_engine.connect() as conn:
        assert latest(conn)[("m2", "q.a")] == (T0 + timedelta(minutes=10), "4")
