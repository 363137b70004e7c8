"""Configuration, engine, migrations, column types, sequence ranges, the lease, bulk inserts."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Connection, Engine, inspect, select, text

from headend.config import ConfigError, DatabaseSettings, load_settings
from headend.db.bulk import ReadingSink, reading_row
from headend.db.engine import writing
from headend.db.errors import Conflict, StorageError
from headend.db.migrate import Migration, current_version, discover, upgrade
from headend.db.tables import readings, schema_version
from headend.ingest.lease import IngestLease
from headend.ingest.ranges import SeqRanges

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "headend.toml"


# --- configuration ------------------------------------------------------------------------------


def test_example_config_loads() -> None:
    settings = load_settings(EXAMPLE)
    assert settings.database.is_sqlite and settings.mqtt.client_id == "taiqu-headend"


def test_bad_config_names_file_key_and_fix(tmp_path: Path) -> None:
    path = tmp_path / "h.toml"
    path.write_text('[database]\nurl = "mysql://x/y"\n[mqtt]\nport = 0\n')
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    text_ = str(err.value)
    assert f"{path}: database.url" in text_ and "postgresql+psycopg" in text_
    assert f"{path}: mqtt.port" in text_
    path.write_text("[database\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(path)
    path.write_text('[database]\nurl = "postgresql+psycopg2://u@h/db"\n')
    with pytest.raises(ConfigError, match="psycopg"):
        load_settings(path)
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path / "missing.toml")


def test_other_sections_are_kept_for_their_owners(tmp_path: Path) -> None:
    path = tmp_path / "h.toml"
    path.write_text('[guards]\nwindow_end = "16:00"\n')
    assert load_settings(path).extra == {"guards": {"window_end": "16:00"}}
    path.write_text('[guards]\nnight_start = "22:00"\n')  # checked by its owner, at load
    with pytest.raises(ConfigError, match="night_start"):
        load_settings(path)


def test_clock_setting_in_string_or_table_form(tmp_path: Path) -> None:
    from headend.config import clock_of
    from taiqu.clock import AcceleratedClock, RealClock

    path = tmp_path / "h.toml"
    path.write_text('clock = "real"\n')
    assert isinstance(clock_of(load_settings(path)), RealClock)
    path.write_text("clock = { start = 2026-01-01T00:00:00+08:00, factor = 60 }\n")
    assert isinstance(clock_of(load_settings(path)), AcceleratedClock)
    path.write_text('retention = "forever"\n')
    with pytest.raises(ConfigError, match="unknown top-level keys"):
        load_settings(path)


def test_password_file_must_be_private_and_fills_the_url(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("TAIQU_HEADEND_DB_PASSWORD", raising=False)
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    os.chmod(secret, 0o644)
    db = DatabaseSettings(url="postgresql+psycopg://taiqu@db/taiqu", password_file=secret)
    with pytest.raises(ConfigError, match="chmod 600"):
        db.resolved_url()
    os.chmod(secret, 0o600)
    assert db.resolved_url() == "postgresql+psycopg://taiqu:s3cret@db/taiqu"
    monkeypatch.setenv("TAIQU_HEADEND_DB_PASSWORD", "env")
    assert ":env@" in db.resolved_url()


# --- engine and migrations ----------------------------------------------------------------------


def test_sqlite_runs_in_wal_with_foreign_keys(sqlite_engine: Engine) -> None:
    with sqlite_engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL


def test_migrations_apply_once_in_order_on_both_backends(engine: Engine) -> None:
    known = [m.version for m in discover()]
    assert known == sorted(known) and known[0] == 1
    assert upgrade(engine) == []  # the fixture already migrated
    with engine.connect() as conn:
        assert current_version(conn) == known[-1]
        names = set(inspect(conn).get_table_names())
    assert {"readings", "streams", "meters", "dead_letters", "schema_version"} <= names


def test_a_failing_migration_leaves_nothing_behind(engine: Engine) -> None:
    def bad(conn: Connection) -> None:
        conn.execute(text("CREATE TABLE half_done (x INTEGER)"))
        raise RuntimeError("boom")

    top = discover()[-1].version
    with pytest.raises(RuntimeError):
        upgrade(engine, [*discover(), Migration(top + 1, "bad", bad)])
    with engine.connect() as conn:
        assert "half_done" not in inspect(conn).get_table_names()
        assert current_version(conn) == top


def test_a_newer_database_is_refused(engine: Engine) -> None:
    with writing(engine) as conn:
        conn.execute(
            schema_version.insert().values(version=999, name="future", applied_at=datetime.now(UTC))
        )
    with pytest.raises(StorageError, match="newer than this software"):
        upgrade(engine)


def test_times_are_stored_as_instants_and_naive_ones_refused(engine: Engine) -> None:
    row = {
        "meter": "m1",
        "quantity": "energy.active.import.total",
        "kind": "interval",
        "value": "1.00",
        "gateway": "gw",
        "flags": "",
    }
    shanghai = timezone(timedelta(hours=8))
    with writing(engine) as conn:
        conn.execute(
            readings.insert().values(
                **row,
                time=datetime(2026, 1, 1, 8, tzinfo=shanghai),
                gateway_time=datetime(2026, 1, 1, tzinfo=UTC),
            )
        )
    with engine.connect() as conn:
        got = conn.execute(select(readings.c.time)).scalar_one()
    assert got == datetime(2026, 1, 1, tzinfo=UTC) and got.tzinfo is not None
    with pytest.raises(Exception, match="aware"), writing(engine) as conn:
        conn.execute(
            readings.insert().values(
                **{**row, "meter": "m2"},
                time=datetime(2026, 1, 1),
                gateway_time=datetime(2026, 1, 1, tzinfo=UTC),
            )
        )


def test_bulk_insert_matches_the_core_insert_and_ignores_duplicates(engine: Engine) -> None:
    t = datetime(2026, 3, 1, 12, 30, 15, 250000, tzinfo=UTC)
    rows = [
        {
            "meter": f"m{i}",
            "quantity": "voltage.a",
            "time": t,
            "kind": "interval",
            "value": "229.9",
            "gateway": "gw",
            "gateway_time": t,
            "meter_time": None,
            "meter_time_raw": None,
            "freeze_time": None,
            "flags": "",
            "command": None,
        }
        for i in range(3)
    ]
    with writing(engine) as conn:
        conn.execute(readings.insert(), [{**rows[0], "meter": "core"}])
        sink = ReadingSink(conn)
        sink.rows += [reading_row(r, sink.stamp) for r in rows]
        assert sink.flush() == 3
        sink.rows += [reading_row(r, sink.stamp) for r in rows]  # again: ignored
        sink.flush()
    with engine.connect() as conn:
        stored = conn.execute(
            select(readings.c.meter, readings.c.time).order_by(readings.c.meter)
        ).all()
        hits = conn.execute(select(readings.c.meter).where(readings.c.time == t)).scalars().all()
    assert [m for m, _ in stored] == ["core", "m0", "m1", "m2"]
    assert {tt for _, tt in stored} == {t}
    assert len(hits) == 4  # the bulk path stores times exactly as the Core path compares them


# --- the lease ----------------------------------------------------------------------------------


def test_one_ingest_lease_per_client_id(engine: Engine) -> None:
    with IngestLease(engine, "ingest-a"):
        with pytest.raises(Conflict, match="ingest-a"), IngestLease(engine, "ingest-a"):
            pass
        with IngestLease(engine, "ingest-b"):
            pass
    with IngestLease(engine, "ingest-a"):  # released
        pass


# --- sequence ranges ----------------------------------------------------------------------------


@given(
    st.lists(st.tuples(st.integers(0, 200), st.integers(0, 20)), max_size=40), st.integers(0, 50)
)
def test_seq_ranges_behave_like_a_set(spans: list[tuple[int, int]], base: int) -> None:
    ranges, model = SeqRanges(), set()
    for first, length in spans:
        ranges.add(first, first + length)
        model |= set(range(first, first + length + 1))
    listed = list(ranges)
    assert all(a <= b for a, b in listed)
    assert all(listed[i][1] + 1 < listed[i + 1][0] for i in range(len(listed) - 1))  # merged
    assert {s for a, b in listed for s in range(a, b + 1)} == model
    end = ranges.prefix_end(base)
    assert all(s in model for s in range(base, end + 1)) and end + 1 not in model
    for first, last in ranges.holes(base, 1000):
        assert not any(s in model for s in range(first, last + 1))
    assert all(s in ranges for s in model) and 10_000 not in ranges


# --- the command line ---------------------------------------------------------------------------


def test_cli_migrate_and_bad_config(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from headend.cli import app

    good = tmp_path / "h.toml"
    good.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "h.db"}"\n')
    runner = CliRunner()
    first = runner.invoke(app, ["migrate", "--config", str(good)])
    assert first.exit_code == 0 and "0001 core: applied now" in first.output
    again = runner.invoke(app, ["migrate", "--config", str(good)])
    assert "0001 core: applied\n" in again.output
    bad = tmp_path / "bad.toml"
    bad.write_text("[api]\nport = 99999\n")
    result = runner.invoke(app, ["serve", "--config", str(bad)])
    assert result.exit_code == 2 and "api.port" in result.output
