"""Per-meter daily interval aggregates: the same results as the raw readings, and a late reading
makes its day be computed again (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine, delete, func, insert, select, update

from headend.analytics import aggregates, store
from headend.analytics.intervals import NeutralCounts
from headend.analytics.model import days
from headend.analytics.service import recompute
from headend.analytics.settings import AnalyticsSettings
from headend.db import reading, writing
from headend.db.analytics_tables import analytics_interval_days
from headend.db.bulk import ReadingSink, reading_row
from headend.db.tables import readings
from simulators.grid import GridConfig, simulate
from tests.headend.analytics.grid_db import store_archive, store_readings

MIX = {"relay_bypass": 0.1, "disconnected": 0.1, "neutral_bypass": 0.1, "bypass": 0.15,
       "vacant": 0.1, "pv": 0.15}  # fmt: skip
STEP = timedelta(minutes=60)
SETTINGS = AnalyticsSettings(interval_minutes=60, suspect_days=3, profile_days=3)
NOW = datetime(2026, 3, 20, tzinfo=UTC)


def _world(engine: Engine, seed: int, pv_area: int | None = None) -> tuple[Any, date]:
    cfg = GridConfig(areas=2, customers=24, days=4, step_minutes=60, mix=MIX, seed=seed,
                     pv_area=pv_area)  # fmt: skip
    run = simulate(cfg)
    store_archive(engine, run)
    store_readings(engine, run, interval_every=1)
    _jitter(engine, run)
    return run, cfg.start + timedelta(days=cfg.days - 1)


def _jitter(engine: Engine, run: Any) -> None:
    """Gateways read a sweep over minutes: one meter's readings 20 min late (still its slot),
    another's 25 min early (a midnight reading lands on the day before by its raw time); a
    third meter's voltage circuit opened while current flows (失压)."""
    ids = sorted(m for m, t in run.meters.items() if t.role == "customer")[:3]
    loaded = [run.times[i + 1] for i, a in enumerate(run.series[ids[2]].current_live) if a > 1]
    with writing(engine) as conn:
        conn.execute(
            update(readings)
            .where(readings.c.meter == ids[2], readings.c.quantity == "voltage.a",
                   readings.c.time.in_(loaded[:: max(1, len(loaded) // 6)]))
            .values(value="96.5")
        )  # fmt: skip
        for meter, shift in zip(
            ids[:2], (timedelta(minutes=20), timedelta(minutes=-25)), strict=True
        ):
            where = (readings.c.meter == meter, readings.c.kind == "interval")
            rows = [dict(r._mapping) for r in conn.execute(select(readings).where(*where))]
            conn.execute(delete(readings).where(*where))
            for r in rows:
                r["time"] = r["time"] + shift
            conn.execute(insert(readings), rows)


def _suspects(engine: Engine, areas: list[str], day: date) -> list[Any]:
    with reading(engine) as conn:
        return [store.suspect_rows(conn, a, day)[1] for a in areas]


def _window(engine: Engine, meters: list[str], ds: list[date], stored: bool) -> aggregates.Window:
    with writing(engine) as conn:
        return aggregates.window(conn, meters, ds, SETTINGS.tz, STEP, NOW, stored=stored)


@pytest.mark.parametrize(("seed", "pv_area"), [(3, None), (8, 1)])
def test_results_identical_with_and_without_aggregates(
    engine: Engine, seed: int, pv_area: int | None
) -> None:
    run, last = _world(engine, seed, pv_area)
    areas = sorted({t.mapped_area for t in run.meters.values()})
    meters = sorted(run.meters)
    ds = days(last - timedelta(days=2), last + timedelta(days=1))
    raw = _window(engine, meters, ds, stored=False)
    assert any(raw.low_voltage.values()) and any(n.off for n in raw.neutral.values())
    assert raw.exports  # PV customers and area meters' export
    assert raw.opened  # relays opened (disconnected for arrears, energy while open)
    recompute(engine, SETTINGS.model_copy(update={"interval_aggregates": False}), last, last, NOW)
    without = _suspects(engine, areas, last)
    assert any(without)
    recompute(engine, SETTINGS, last, last, NOW)  # fills the table
    with reading(engine) as conn:
        stored = conn.execute(select(func.count()).select_from(analytics_interval_days)).scalar()
    assert stored == len(meters) * len(ds)
    assert _suspects(engine, areas, last) == without
    recompute(engine, SETTINGS, last, last, NOW)  # reads it back
    assert _suspects(engine, areas, last) == without
    assert _window(engine, meters, ds, stored=True) == raw


def test_a_late_reading_invalidates_its_day(engine: Engine) -> None:
    run, last = _world(engine, 5)
    meter = sorted(m for m, t in run.meters.items() if t.role == "customer")[3]
    late_day = last - timedelta(days=1)
    at = next(t for t in run.times if t.astimezone(SETTINGS.tz).date() == late_day and
              t.astimezone(SETTINGS.tz).hour == 19)  # fmt: skip
    where = (readings.c.meter == meter, readings.c.time == at, readings.c.kind == "interval")
    with writing(engine) as conn:  # the 19:00 sweep of this meter has not arrived yet
        held = [dict(r._mapping) for r in conn.execute(select(readings).where(*where))]
        conn.execute(delete(readings).where(*where))
    assert held
    ds = days(last - timedelta(days=2), last + timedelta(days=1))
    before = _window(engine, [meter], ds, stored=True)
    assert at not in before.loads[meter]
    with reading(engine) as conn:
        first = dict(
            conn.execute(select(analytics_interval_days.c.day, analytics_interval_days.c.computed_at)
                         .where(analytics_interval_days.c.meter == meter)).all()
        )  # fmt: skip
    with writing(engine) as conn:  # it arrives through the ingest's write path
        sink = ReadingSink(conn)
        sink.rows += [reading_row(r, sink.stamp) for r in held]
        sink.flush()
    later = NOW + timedelta(hours=1)
    with writing(engine) as conn:
        after = aggregates.window(conn, [meter], ds, SETTINGS.tz, STEP, later)
    assert at in after.loads[meter] and after == _window(engine, [meter], ds, stored=False)
    assert after != before
    with reading(engine) as conn:
        now_rows = dict(
            conn.execute(select(analytics_interval_days.c.day, analytics_interval_days.c.computed_at)
                         .where(analytics_interval_days.c.meter == meter)).all()
        )  # fmt: skip
    assert now_rows[late_day.isoformat()] == later  # computed again and stored
    others = [d.isoformat() for d in ds if d != late_day]
    assert all(now_rows[d] == first[d] for d in others)  # the other days were read back


def test_a_day_not_over_is_computed_but_not_stored(sqlite_engine: Engine) -> None:
    run, last = _world(sqlite_engine, 4)
    meters = sorted(run.meters)
    ds = days(last - timedelta(days=2), last + timedelta(days=1))
    from headend.analytics.model import boundary

    during = boundary(last, SETTINGS.tz) + timedelta(hours=20)
    with writing(sqlite_engine) as conn:
        got = aggregates.window(conn, meters, ds, SETTINGS.tz, STEP, during)
    assert got == _window(sqlite_engine, meters, ds, stored=False)
    with reading(sqlite_engine) as conn:
        stored = set(conn.execute(select(analytics_interval_days.c.day).distinct()).scalars())
    assert stored == {d.isoformat() for d in ds if d != last}


finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


@given(
    energy=st.lists(st.one_of(st.none(), finite), min_size=24, max_size=24),
    low=st.dictionaries(st.integers(0, 23), finite, max_size=4),
    counts=st.tuples(st.integers(0, 96), st.integers(0, 96), finite, finite),
)
def test_encode_decode_round_trip(
    energy: list[float | None], low: dict[int, float], counts: tuple[int, int, float, float]
) -> None:
    zone = SETTINGS.tz
    day = date(2026, 3, 4)
    grid = aggregates.slots(day, zone, STEP)
    assert len(grid) == 24 and grid[0] - STEP == datetime(2026, 3, 3, 16, tzinfo=UTC)
    first_off = grid[3] if counts[1] else None
    f = aggregates.MeterDay(
        "m", day, 7, {t: v for t, v in zip(grid, energy, strict=True) if v is not None}, {},
        {grid[i]: v for i, v in low.items()},
        NeutralCounts(counts[0], counts[1], counts[2], counts[3], first_off),
    )  # fmt: skip
    back = aggregates.decode("m", day, 7, aggregates.encode(f, zone, STEP), grid)
    assert back == f
    opened = replace(f, opened=True)
    assert aggregates.decode("m", day, 7, aggregates.encode(opened, zone, STEP), grid) == opened
    assert all(math.copysign(1, back.energy[t]) == math.copysign(1, v) for t, v in f.energy.items())


def test_a_meter_flagged_pv_later_gets_its_export_read(sqlite_engine: Engine) -> None:
    """Days stored while a meter was not exporting hold no export: once the archive flags it
    PV, its days are computed again with the export registers."""
    run, last = _world(sqlite_engine, 8, pv_area=1)
    meters = sorted(run.meters)
    pv = next(m for m, t in run.meters.items() if t.pv_kw > 0)
    ds = days(last - timedelta(days=2), last + timedelta(days=1))

    def window(exporting: set[str], stored: bool = True) -> aggregates.Window:
        with writing(sqlite_engine) as conn:
            return aggregates.window(conn, meters, ds, SETTINGS.tz, STEP, NOW, stored=stored,
                                     exporting=exporting)  # fmt: skip

    assert window(set()).exports == {}
    again = window({pv})
    assert again.exports[pv] and again == window({pv}, stored=False)
    assert window({pv}) == again  # now stored with the export
    assert again.loads == window(set(), stored=False).loads


def test_days_long_before_the_window_are_forgotten(sqlite_engine: Engine) -> None:
    run, last = _world(sqlite_engine, 4)
    meters = sorted(run.meters)
    ds = days(last - timedelta(days=2), last + timedelta(days=1))
    old = ds[0] - timedelta(days=aggregates.KEEP_DAYS + 1)
    kept = ds[0] - timedelta(days=aggregates.KEEP_DAYS)
    with writing(sqlite_engine) as conn:
        aggregates.save(conn, [aggregates.MeterDay(meters[0], d) for d in (old, kept)],
                        SETTINGS.tz, STEP, NOW)  # fmt: skip
    _window(sqlite_engine, meters, ds, stored=True)
    with reading(sqlite_engine) as conn:
        stored = set(
            conn.execute(
                select(analytics_interval_days.c.day).where(
                    analytics_interval_days.c.meter == meters[0]
                )
            ).scalars()
        )
    assert stored == {kept.isoformat(), *(d.isoformat() for d in ds)}


def test_a_day_stored_without_its_relay_state_is_computed_again(sqlite_engine: Engine) -> None:
    """Days stored before the relay-open flag was kept ("o" absent) are not trusted."""
    run, last = _world(sqlite_engine, 3)
    meters = sorted(run.meters)
    ds = days(last - timedelta(days=2), last + timedelta(days=1))
    raw = _window(sqlite_engine, meters, ds, stored=False)
    assert raw.opened
    _window(sqlite_engine, meters, ds, stored=True)  # stores every day
    t = analytics_interval_days
    with writing(sqlite_engine) as conn:
        for meter, day, text in conn.execute(select(t.c.meter, t.c.day, t.c.facts)).all():
            body = json.loads(text)
            del body["o"]
            conn.execute(update(t).where(t.c.meter == meter, t.c.day == day)
                         .values(facts=json.dumps(body)))  # fmt: skip
    with writing(sqlite_engine) as conn:
        have = aggregates.load(conn, meters, ds, SETTINGS.tz, STEP)
    assert have and all(f.opened is None for f in have.values())
    later = NOW + timedelta(hours=1)
    with writing(sqlite_engine) as conn:
        again = aggregates.window(conn, meters, ds, SETTINGS.tz, STEP, later)
    assert again == raw
    with reading(sqlite_engine) as conn:
        stamps = set(conn.execute(select(t.c.computed_at)).scalars())
    assert stamps == {later}  # every day computed and stored again, now with its flag


def test_decode_reads_what_json_writes_beyond_orjson() -> None:
    """Stored text is written by ``json`` (NaN as ``NaN``); reading back with orjson falls back
    to ``json`` for what orjson refuses."""
    grid = aggregates.slots(date(2026, 3, 4), SETTINGS.tz, STEP)
    text = json.dumps({"e": [math.nan, 1.5], "x": False, "v": None, "n": [0, 0, 0.0, 0.0, None],
                       "o": True})  # fmt: skip
    back = aggregates.decode("m", date(2026, 3, 4), 7, text, grid)
    assert math.isnan(back.energy[grid[0]]) and back.energy[grid[1]] == 1.5 and back.opened
