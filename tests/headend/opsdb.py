"""Database fixtures for the operations tests: a migrated head-end database on SQLite and on
PostgreSQL (a clean schema per test on the session's private instance)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine

from headend.config import DatabaseSettings
from headend.db import make_engine
from headend.db.migrate import upgrade

BACKENDS = ["sqlite", "postgresql"]


def _reset_postgres(url: str) -> None:
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql("DROP SCHEMA IF EXISTS public CASCADE")
        conn.exec_driver_sql("CREATE SCHEMA public")
    admin.dispose()


def migrated_engine(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Engine:
    """A fresh, fully migrated database of ``backend``."""
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'headend.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
        _reset_postgres(url)
    engine = make_engine(DatabaseSettings(url=url))
    upgrade(engine)
    return engine


@pytest.fixture(name="engine", params=BACKENDS)
def engine_fixture(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A migrated head-end database, once on SQLite and once on PostgreSQL."""
    eng = migrated_engine(request.param, request, tmp_path)
    yield eng
    eng.dispose()


@pytest.fixture(name="sqlite_engine")
def sqlite_engine_fixture(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A migrated head-end database on SQLite only (for tests of SQLite-specific behaviour)."""
    eng = migrated_engine("sqlite", request, tmp_path)
    yield eng
    eng.dispose()
