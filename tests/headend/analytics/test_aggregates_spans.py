"""Stored interval days are invalidated by the spans of reading times the ingest writes
(``headend.db.bulk`` → ``reading_spans`` → ``aggregates.invalidate``), SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, func, insert, select

from headend.analytics import aggregates
from headend.analytics.model import boundary
from headend.db import reading, writing
from headend.db.analytics_tables import analytics_interval_days as days_t
from headend.db.bulk import ReadingSink, reading_row
from headend.db.migrate import upgrade
from headend.db.tables import reading_spans

ZONE = ZoneInfo("Asia/Shanghai")
STEP = timedelta(minutes=15)
D0 = date(2026, 3, 1)
DAYS = [D0 + timedelta(days=k) for k in range(6)]
NOW = datetime(2026, 3, 20, tzinfo=UTC)


def _row(meter: str, t: datetime) -> dict[str, Any]:
    return {"meter": meter, "quantity": "energy.active.import.total", "time": t,
            "kind": "interval", "value": "1.5", "gateway": "gw1", "gateway_time": t,
            "meter_time": None, "meter_time_raw": None, "freeze_time": None, "flags": "",
            "command": None}  # fmt: skip


def _write(engine: Engine, *times: datetime) -> None:
    """Readings arriving through the ingest's write path, one transaction."""
    with writing(engine) as conn:
        sink = ReadingSink(conn)
        sink.rows += [reading_row(_row("m1", t), sink.stamp) for t in times]
        sink.flush()


def _store(engine: Engine, zone: ZoneInfo = ZONE, step: timedelta = STEP) -> None:
    with writing(engine) as conn:
        aggregates.invalidate(conn, ZONE, STEP)  # what the fixture's writes left
        aggregates.save(conn, [aggregates.MeterDay(m, d) for m in ("m1", "m2") for d in DAYS],
                        zone, step, NOW)  # fmt: skip


def _stored(engine: Engine) -> set[tuple[str, date]]:
    with reading(engine) as conn:
        rows = conn.execute(select(days_t.c.meter, days_t.c.day)).all()
    return {(m, d if isinstance(d, date) else date.fromisoformat(d)) for m, d in rows}


def _spans(engine: Engine) -> list[tuple[datetime, datetime]]:
    with reading(engine) as conn:
        return [
            (a, b) for a, b in conn.execute(select(reading_spans.c.t_min, reading_spans.c.t_max))
        ]


def test_each_write_records_the_span_of_its_reading_times(engine: Engine) -> None:
    t = boundary(D0, ZONE)
    _write(engine, t + timedelta(hours=5), t + timedelta(hours=1), t + timedelta(hours=3))
    _write(engine, t + timedelta(days=2))
    with writing(engine) as conn:
        assert ReadingSink(conn).flush() == 0  # nothing to write: no span
    assert _spans(engine) == [
        (t + timedelta(hours=1), t + timedelta(hours=5)),
        (t + timedelta(days=2), t + timedelta(days=2)),
    ]


@pytest.mark.parametrize(
    ("offset", "reached"),
    [
        (timedelta(hours=13), [2]),  # midday of day 2
        (timedelta(minutes=20), [1, 2]),  # within two steps after midnight: the day before too
        (timedelta(hours=24) - timedelta(minutes=30), [2, 3]),  # two steps before midnight
        (timedelta(hours=24) - timedelta(minutes=31), [2]),
    ],
)
def test_a_late_reading_deletes_the_days_it_can_change_for_every_meter(
    engine: Engine, offset: timedelta, reached: list[int]
) -> None:
    _store(engine)
    _write(engine, boundary(DAYS[2], ZONE) + offset)
    with writing(engine) as conn:
        assert aggregates.invalidate(conn, ZONE, STEP) == 1
    gone = {DAYS[k] for k in reached}
    assert _stored(engine) == {(m, d) for m in ("m1", "m2") for d in DAYS if d not in gone}
    assert _spans(engine) == []  # consumed
    with writing(engine) as conn:
        assert aggregates.invalidate(conn, ZONE, STEP) == 0


def test_a_back_fill_reaches_every_day_it_spans(engine: Engine) -> None:
    _store(engine)
    _write(engine, boundary(DAYS[1], ZONE) + timedelta(hours=12),
           boundary(DAYS[4], ZONE) + timedelta(hours=12))  # fmt: skip
    with writing(engine) as conn:
        aggregates.invalidate(conn, ZONE, STEP)
    assert {d for _, d in _stored(engine)} == {DAYS[0], DAYS[5]}


def test_a_span_written_after_the_consumer_read_is_left_for_the_next(engine: Engine) -> None:
    """Spans are consumed by id: one committed after the consumer's read stays (its reading
    may not have been seen) and invalidates its day next time."""
    _store(engine)
    with writing(engine) as conn:
        aggregates.invalidate(conn, ZONE, STEP)
    _write(engine, boundary(DAYS[3], ZONE) + timedelta(hours=9))
    assert len(_spans(engine)) == 1
    with writing(engine) as conn:
        assert aggregates.invalidate(conn, ZONE, STEP) == 1
    assert DAYS[3] not in {d for _, d in _stored(engine)}


def test_stored_days_of_another_zone_or_step_are_dropped(engine: Engine) -> None:
    _store(engine, step=timedelta(minutes=60))
    _write(engine, boundary(DAYS[0], ZONE) + timedelta(hours=12))
    with writing(engine) as conn:
        aggregates.invalidate(conn, ZONE, STEP)
    assert _stored(engine) == set()


def test_migration_0019_empties_the_days_checked_by_count(tmp_path: Any) -> None:
    from headend.config import DatabaseSettings
    from headend.db import make_engine

    engine = make_engine(DatabaseSettings(url=f"sqlite:///{tmp_path / 'h.db'}"))
    applied = upgrade(engine, _before(19))
    assert 19 not in applied
    with writing(engine) as conn:
        conn.execute(insert(days_t), [{"meter": "m1", "day": D0.isoformat(), "zone": ZONE.key,
                                        "step_s": 900, "readings": 96, "facts": "{}",
                                        "computed_at": NOW}])  # fmt: skip
    assert upgrade(engine) == [19]
    with reading(engine) as conn:
        assert conn.execute(select(func.count()).select_from(days_t)).scalar() == 0
        assert conn.execute(select(func.count()).select_from(reading_spans)).scalar() == 0
    engine.dispose()


def _before(number: int) -> Any:
    from headend.db.migrate import discover

    return [m for m in discover() if m.version < number]
