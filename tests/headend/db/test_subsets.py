"""Partial indexes of ``readings`` (headend.db.subsets): the analytics' frozen and negative-value
queries return the same rows as before and, on SQLite, read only the index of those rows."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, event, insert, text

from headend.analytics import repo
from headend.analytics.model import boundary
from headend.db import reading, writing
from headend.db.subsets import INDEXES
from headend.db.tables import readings

ZONE = ZoneInfo("Asia/Shanghai")
DAY = date(2026, 3, 2)


def _row(meter: str, quantity: str, t: datetime, kind: str, value: str) -> dict[str, Any]:
    return {"meter": meter, "quantity": quantity, "time": t, "kind": kind, "value": value,
            "gateway": "gw1", "gateway_time": t, "freeze_time": t if kind == "daily_frozen"
            else None, "flags": ""}  # fmt: skip


def _fill(engine: Engine) -> None:
    """Two days of 15-minute registers and currents of two meters, frozen registers at each
    midnight; negative values on signed quantities (and on a voltage, which is not signed)."""
    rows = []
    t0 = boundary(DAY, ZONE)
    for m, sign in (("m1", "-"), ("m2", "")):
        for k in range(2 * 96 + 1):
            t = t0 + k * timedelta(minutes=15)
            rows.append(_row(m, "energy.active.import.total", t, "interval", f"{100 + k / 4}"))
            rows.append(_row(m, "current.a", t, "interval", f"{sign if k % 50 == 7 else ''}2.5"))
            rows.append(_row(m, "voltage.a", t, "interval", "-1" if k == 3 else "220.1"))
        for d in range(3):
            t = boundary(DAY + timedelta(days=d), ZONE)
            rows.append(_row(m, "energy.active.import.total", t, "daily_frozen", f"{100 + 24 * d}"))
        rows.append(_row(m, "power.active.total", t0 + timedelta(hours=5), "on_demand", "-0.8"))
    with writing(engine) as conn:
        conn.execute(insert(readings), rows)


def test_frozen_and_negative_rows_are_found(engine: Engine) -> None:
    _fill(engine)
    with reading(engine) as conn:
        frozen = repo.frozen_facts(
            conn, ["m1", "m2"], "energy.active.import.total", DAY, DAY + timedelta(days=2), ZONE
        )
        got = repo.anomalous_instants(
            conn, ["m1", "m2"], boundary(DAY, ZONE), boundary(DAY + timedelta(days=3), ZONE)
        )
    for m in ("m1", "m2"):
        assert {d: f.value for d, f in frozen[m].items()} == {
            DAY + timedelta(days=d): Decimal(100 + 24 * d) for d in range(3)
        }
    # m1: currents at k = 7, 57, 107, 157 and its power; m2: only its power; never a voltage
    assert sorted((i.meter, i.quantity) for i in got) == [("m1", "current.a")] * 4 + [
        ("m1", "power.active.total"),
        ("m2", "power.active.total"),
    ]
    assert all(i.value < 0 for i in got)


def test_the_partial_indexes_exist(engine: Engine) -> None:
    with reading(engine) as conn:
        if engine.dialect.name == "sqlite":
            sql = "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'readings'"
        else:
            sql = "SELECT indexname FROM pg_indexes WHERE tablename = 'readings'"
        names = {r[0] for r in conn.execute(text(sql))}
    assert set(INDEXES) <= names


@contextmanager
def _statements(engine: Engine) -> Iterator[list[tuple[str, Any]]]:
    seen: list[tuple[str, Any]] = []

    def grab(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append((statement, params))

    event.listen(engine, "before_cursor_execute", grab)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", grab)


def test_sqlite_reads_the_partial_indexes(sqlite_engine: Engine) -> None:
    """The query plans name the partial index: a query whose condition no longer contains the
    index's (a bound parameter instead of the literal, say) walks every interval row again."""
    _fill(sqlite_engine)
    t0, t1 = boundary(DAY, ZONE), boundary(DAY + timedelta(days=3), ZONE)
    plans = {}
    for name, call in (
        ("ix_readings_frozen", lambda c: repo.frozen_facts(
            c, ["m1"], "energy.active.import.total", DAY, DAY, ZONE)),
        ("ix_readings_negative", lambda c: repo.anomalous_instants(c, ["m1"], t0, t1)),
    ):  # fmt: skip
        with _statements(sqlite_engine) as seen, reading(sqlite_engine) as conn:
            call(conn)
        (statement, params), *_ = seen
        raw = sqlite_engine.raw_connection()
        try:
            plan = raw.cursor().execute(f"EXPLAIN QUERY PLAN {statement}", params).fetchall()
        finally:
            raw.close()
        plans[name] = " ".join(str(r[-1]) for r in plan)
        assert f"USING INDEX {name}" in plans[name], plans
