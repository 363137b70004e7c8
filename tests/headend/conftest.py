"""Head-end test fixtures: migrated databases on SQLite and on a private PostgreSQL."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

from headend.config import DatabaseSettings, Settings
from headend.db import make_engine
from headend.db.migrate import upgrade

_counter = itertools.count()
_TEMPLATE = "taiqu_template"


@pytest.fixture(scope="session")
def pg_template(postgres_url: str) -> str:
    """A migrated template database: each test gets a copy (CREATE DATABASE … TEMPLATE)."""
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {_TEMPLATE}"))
        conn.execute(text(f"CREATE DATABASE {_TEMPLATE}"))
    admin.dispose()
    url = postgres_url.rsplit("/", 1)[0] + f"/{_TEMPLATE}"
    engine = make_engine(DatabaseSettings(url=url))
    upgrade(engine)
    engine.dispose()
    return postgres_url


def _pg_copy(base_url: str) -> str:
    name = f"t{next(_counter)}_{id(object())}"
    admin = create_engine(base_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name} TEMPLATE {_TEMPLATE}"))
    admin.dispose()
    return base_url.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture
def sqlite_settings(tmp_path: Path) -> DatabaseSettings:
    return DatabaseSettings(url=f"sqlite:///{tmp_path / 'headend.db'}")


@pytest.fixture(params=["sqlite", "postgresql"])
def db_settings(request: pytest.FixtureRequest, tmp_path: Path) -> DatabaseSettings:
    """A migrated database of each backend."""
    if request.param == "sqlite":
        settings = DatabaseSettings(url=f"sqlite:///{tmp_path / 'headend.db'}")
        engine = make_engine(settings)
        upgrade(engine)
        engine.dispose()
        return settings
    base = request.getfixturevalue("pg_template")
    return DatabaseSettings(url=_pg_copy(base))


@pytest.fixture
def engine(db_settings: DatabaseSettings) -> Iterator[Engine]:
    e = make_engine(db_settings)
    yield e
    e.dispose()


@pytest.fixture
def sqlite_engine(sqlite_settings: DatabaseSettings) -> Iterator[Engine]:
    e = make_engine(sqlite_settings)
    upgrade(e)
    yield e
    e.dispose()


@pytest.fixture
def settings(db_settings: DatabaseSettings) -> Settings:
    return Settings(database=db_settings)
