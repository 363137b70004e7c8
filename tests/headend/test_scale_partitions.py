"""Migration 0005 on PostgreSQL: partition routing, creation ahead, retention with aggregates."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, func, insert, select, text

from headend.config import DatabaseSettings
from headend.db import make_engine
from headend.db.engine import reading, writing
from headend.db.migrate import discover, upgrade
from headend.db.scale import (
    aggregate_days,
    apply_retention,
    ensure_partitions,
    is_partitioned,
    maintain,
    month_start,
    partitions,
    reading_daily,
)
from headend.db.tables import readings
from headend.ingest.store import Ingestor
from headend.ingest.streams import held_runs
from protocols.model import ReadingKind
from protocols.uplink import ReadingRecord, Topics, encode
from tests.headend.gen import batch

_names = itertools.count()
NOW = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)


def _fresh_url(base: str, template: str | None) -> str:
    name = f"scale{next(_names)}_{id(object())}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        clause = f" TEMPLATE {template}" if template else ""
        conn.execute(text(f"CREATE DATABASE {name}{clause}"))
    admin.dispose()
    return base.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture
def pg(pg_template: str) -> Iterator[Engine]:
    """A PostgreSQL database migrated to the newest version (0005 included)."""
    e = make_engine(DatabaseSettings(url=_fresh_url(pg_template, "taiqu_template")))
    yield e
    e.dispose()


def rec(meter: str, at: datetime, total: str, quantity: str = "energy.active.import.total"):
    return ReadingRecord(
        meter=meter,
        kind=ReadingKind.INTERVAL,
        gateway_time=at,
        meter_time=at,
        values={quantity: total, "voltage.a": "230.1", "relay.state": "closed"},
    )


def ingest(engine: Engine, seq: int, records: list[ReadingRecord], gw: str = "gw-1") -> int:
    b = batch(gw, "e1e1e1e1", seq, list(records))
    with writing(engine) as conn:
        out = Ingestor().handle(conn, Topics(gw).data, encode(b), NOW)
    return out.readings


def stored_by_an_old_headend(engine: Engine, records: list[ReadingRecord]) -> None:
    """The rows a head-end of an older schema stored (today's ingest needs today's tables)."""
    rows = [
        {"meter": r.meter, "quantity": q, "time": r.gateway_time, "kind": r.kind.value,
         "value": v, "gateway": "gw-1", "gateway_time": r.gateway_time,
         "meter_time": r.meter_time, "flags": ""}
        for r in records
        for q, v in r.values.items()
    ]  # fmt: skip
    with writing(engine) as conn:
        conn.execute(insert(readings), rows)


def where(engine: Engine) -> dict[str, str]:
    """time (iso) → the partition holding that reading."""
    with reading(engine) as conn:
        rows = conn.execute(
            text("SELECT time, tableoid::regclass::text FROM readings WHERE quantity = 'voltage.a'")
        ).all()
    return {r[0].astimezone(UTC).isoformat(): r[1] for r in rows}


def test_migration_partitions_readings_and_routes_by_month(pg: Engine) -> None:
    with reading(pg) as conn:
        assert is_partitioned(conn)
        months = partitions(conn)
    assert month_start(datetime.now(UTC)) in months  # the current month exists, and ahead
    far_past = datetime(2001, 3, 4, tzinfo=UTC)
    this_month = datetime.now(UTC).replace(microsecond=0)
    ingest(pg, 1, [rec("202600000001", this_month, "1.00"), rec("202600000001", far_past, "0.50")])
    got = where(pg)
    current = month_start(this_month)
    assert got[this_month.isoformat()] == f"readings_p{current.year:04d}{current.month:02d}"
    assert got[far_past.isoformat()] == "readings_default"  # never rejected


def test_creation_ahead_moves_rows_out_of_the_default_partition(pg: Engine) -> None:
    later = datetime(2031, 7, 9, 12, tzinfo=UTC)
    ingest(pg, 1, [rec("202600000001", later, "7.00"), rec("202600000002", later, "8.00")])
    assert set(where(pg).values()) == {"readings_default"}
    with writing(pg) as conn:
        made = ensure_partitions(conn, later, ahead=1)
    assert made == [month_start(later), month_start(later + timedelta(days=31))]
    assert set(where(pg).values()) == {"readings_p203107"}
    with reading(pg) as conn:
        assert conn.execute(select(func.count()).select_from(readings)).scalar_one() == 6
    with writing(pg) as conn:  # a second run creates nothing
        assert ensure_partitions(conn, later, ahead=1) == []


def test_migration_moves_existing_rows_into_partitions(pg_template: str) -> None:
    engine = make_engine(DatabaseSettings(url=_fresh_url(pg_template, None)))
    try:
        upgrade(engine, [m for m in discover() if m.version < 5])
        t1, t2 = datetime(2025, 1, 31, 23, 45, tzinfo=UTC), datetime(2025, 2, 1, tzinfo=UTC)
        rows = [rec("202600000001", t1, "1.00"), rec("202600000001", t2, "1.25")]
        stored_by_an_old_headend(engine, rows)  # schema version 4
        with reading(engine) as conn:
            before = sorted(tuple(r) for r in conn.execute(select(readings)).all())
            assert not is_partitioned(conn)
        assert 5 in upgrade(engine)
        with reading(engine) as conn:
            after = sorted(tuple(r) for r in conn.execute(select(readings)).all())
            assert is_partitioned(conn)
        assert after == before
        assert where(engine) == {
            t1.isoformat(): "readings_p202501",
            t2.isoformat(): "readings_p202502",
        }
    finally:
        engine.dispose()


def test_ingest_stays_idempotent_on_the_partitioned_table(pg: Engine) -> None:
    at = datetime.now(UTC).replace(microsecond=0)
    records = [rec(f"20260000010{i}", at, f"{i}.00") for i in range(5)]
    assert ingest(pg, 1, records) == 15
    assert ingest(pg, 1, records) == 0  # the same records re-sent
    assert ingest(pg, 3, records[2:]) == 0  # overlapping re-send
    with reading(pg) as conn:
        assert conn.execute(select(func.count()).select_from(readings)).scalar_one() == 15
        assert held_runs(conn, "gw-1", "e1e1e1e1") == [(1, 5)]


def day(n: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(2025, 3, 1, tzinfo=UTC) + timedelta(days=n, hours=hour, minutes=minute)


def test_retention_drops_old_partitions_only_after_their_day_aggregates(pg: Engine) -> None:
    old = [rec("202600000001", day(0, h), f"{100 + h}.50") for h in (0, 6, 23)]
    old += [rec("202600000001", day(1, 1), "124.00"), rec("202600000002", day(0, 12), "9.75")]
    ingest(pg, 1, old)
    with writing(pg) as conn:
        ensure_partitions(conn, day(0), ahead=0)
        ensure_partitions(conn, NOW, ahead=1)
    recent = rec("202600000001", NOW - timedelta(hours=1), "500.00")
    ingest(pg, 10, [recent])
    with writing(pg) as conn:
        dropped = apply_retention(conn, NOW, keep_months=12)
    assert dropped == [datetime(2025, 3, 1).date()]
    with reading(pg) as conn:
        months = partitions(conn)
        rows = conn.execute(select(reading_daily).order_by("meter", "day")).all()
        left = conn.execute(
            select(readings.c.time).where(readings.c.meter == "202600000001")
        ).scalars()
        left_times = sorted(set(left))
    assert month_start(day(0)) not in months and month_start(NOW) in months
    assert left_times == [recent.gateway_time]  # only the recent reading is left raw
    by_key = {(r.meter, r.day.isoformat()): r for r in rows}
    d0 = by_key[("202600000001", "2025-03-01")]
    assert (d0.first_time, d0.first_value) == (day(0, 0), "100.50")
    assert (d0.last_time, d0.last_value) == (day(0, 23), "123.50")
    assert (d0.min_value, d0.max_value) == (Decimal("100.50"), Decimal("123.50"))
    assert by_key[("202600000001", "2025-03-02")].last_value == "124.00"
    assert by_key[("202600000002", "2025-03-01")].first_value == "9.75"
    assert {r.quantity for r in rows} == {"energy.active.import.total"}  # cumulative only


def test_aggregates_merge_late_readings_and_local_days(pg: Engine) -> None:
    ingest(pg, 1, [rec("202600000001", day(0, 10), "10.00")])
    with writing(pg) as conn:
        aggregate_days(conn, day(0), day(1))
    ingest(
        pg, 2, [rec("202600000001", day(0, 2), "9.00"), rec("202600000001", day(0, 20), "11.00")]
    )
    with writing(pg) as conn:  # late readings arrive: a re-run merges them in
        aggregate_days(conn, day(0, 15), day(1))
        aggregate_days(conn, day(0), day(0, 5))
        aggregate_days(conn, day(0), day(1))  # and re-running changes nothing
    with reading(pg) as conn:
        (row,) = conn.execute(select(reading_daily)).all()
    assert (row.first_value, row.last_value) == ("9.00", "11.00")
    assert (row.min_value, row.max_value) == (Decimal("9.00"), Decimal("11.00"))
    with writing(pg) as conn:  # days of another time zone (UTC+8): 20:00Z is the next day
        conn.execute(reading_daily.delete())
        aggregate_days(conn, day(0), day(1), tz="Asia/Shanghai")
        got = conn.execute(select(reading_daily.c.day, reading_daily.c.last_value)).all()
    assert sorted((d.isoformat(), v) for d, v in got) == [
        ("2025-03-01", "10.00"),
        ("2025-03-02", "11.00"),
    ]


def test_maintenance_from_several_instances_at_once(pg: Engine) -> None:
    ingest(pg, 1, [rec("202600000001", NOW - timedelta(hours=2), "1.00")])
    reports, errors = [], []

    def run() -> None:
        try:
            reports.append(maintain(pg, NOW, ahead=24, keep_months=60))
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    created = sorted(m for r in reports for m in r.created)
    assert len(created) == len(set(created)) > 0  # each month created by exactly one instance
    with reading(pg) as conn:
        assert conn.execute(select(func.count()).select_from(reading_daily)).scalar_one() == 1


def test_sqlite_is_left_alone(sqlite_engine: Engine) -> None:
    with reading(sqlite_engine) as conn:
        assert not is_partitioned(conn)
    report = maintain(sqlite_engine, NOW, keep_months=1)
    assert (report.created, report.dropped, report.aggregated) == ([], [], 0)


def test_a_meters_time_window_reads_only_its_months_partition(pg: Engine) -> None:
    t = datetime(2031, 7, 9, 12, tzinfo=UTC)
    with writing(pg) as conn:
        ensure_partitions(conn, t, ahead=2)
    ingest(pg, 1, [rec("202600000001", t, "1.00")])
    query = (
        "EXPLAIN SELECT * FROM readings WHERE meter = '202600000001' "
        "AND quantity = 'energy.active.import.total' "
        "AND time >= '2031-07-01 00:00:00+00' AND time < '2031-07-20 00:00:00+00' "
        "ORDER BY time DESC LIMIT 1"
    )
    with reading(pg) as conn:
        plan = "\n".join(conn.exec_driver_sql(query).scalars())
    assert "readings_p203107" in plan
    assert "readings_p203108" not in plan and "readings_default" not in plan  # pruned


def test_scale_settings_name_the_bad_key() -> None:
    from headend.config import ConfigError
    from headend.scale.job import scale_settings

    assert scale_settings({"scale": {"keep_raw_months": 24}}).keep_raw_months == 24
    with pytest.raises(ConfigError, match=r"headend.toml: scale.zone: .*unknown time zone"):
        scale_settings({"scale": {"zone": "Mars/Olympus"}}, Path("headend.toml"))


def test_the_job_creates_ahead_and_applies_configured_retention(pg: Engine) -> None:
    from headend.scale.job import ScaleSettings, run_once
    from taiqu.clock import ManualClock

    old = datetime(2024, 2, 10, tzinfo=UTC)
    with writing(pg) as conn:
        ensure_partitions(conn, old, ahead=0)
    ingest(pg, 1, [rec("202600000001", old, "3.00")])
    settings = ScaleSettings(partitions_ahead=6, keep_raw_months=12, zone="Asia/Shanghai")
    report = run_once(pg, settings, ManualClock(NOW))
    assert report.dropped == [month_start(old)]
    assert month_start(NOW + timedelta(days=6 * 31 - 20)) in report.created + partitions_of(pg)
    with reading(pg) as conn:
        (row,) = conn.execute(select(reading_daily)).all()
    assert (row.day.isoformat(), row.last_value) == ("2024-02-10", "3.00")


def partitions_of(engine: Engine) -> list:
    with reading(engine) as conn:
        return partitions(conn)
