"""The migration runner: numbered modules ``headend/migrations/NNNN_name.py``, applied in order.

Each module defines ``upgrade(conn) -> None`` (SQLAlchemy Core: ``metadata.create_all(conn,
tables=[…])`` or DDL) and runs in its own transaction with the row that records it in
``schema_version``; a failed migration leaves nothing behind (PostgreSQL and SQLite both have
transactional DDL).  Concurrent starters are serialised (an advisory lock on PostgreSQL, the
write lock on SQLite) so each migration runs exactly once.  A database whose version is newer than
the newest module this software knows raises ``StorageError``.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from types import ModuleType

from sqlalchemy import Connection, Engine, func, insert, select

from headend.db.engine import writing
from headend.db.errors import StorageError
from headend.db.tables import schema_version

MODULE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)$")
PACKAGE = "headend.migrations"
ADVISORY_KEY = 0x7461_6971  # "taiq"


@dataclass(frozen=True)
class Migration:
    """One numbered migration module."""

    version: int
    name: str
    upgrade: Callable[[Connection], None]


def discover(package: str = PACKAGE) -> list[Migration]:
    """The migration modules of ``package``, in order; duplicate numbers are an error."""
    pkg: ModuleType = importlib.import_module(package)
    found: dict[int, Migration] = {}
    for info in pkgutil.iter_modules(pkg.__path__):
        match = MODULE_NAME.match(info.name)
        if not match:
            continue
        module = importlib.import_module(f"{package}.{info.name}")
        version = int(match.group(1))
        if version in found:
            raise StorageError(f"two migrations numbered {version:04d}")
        found[version] = Migration(version, match.group(2), module.upgrade)
    return [found[v] for v in sorted(found)]


def current_version(conn: Connection) -> int:
    """The highest applied migration (0 for an empty database)."""
    if not conn.dialect.has_table(conn, schema_version.name):
        return 0
    top = select(func.coalesce(func.max(schema_version.c.version), 0))
    return int(conn.execute(top).scalar_one())


def _lock(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({ADVISORY_KEY})")


def upgrade(engine: Engine, migrations: list[Migration] | None = None) -> list[int]:
    """Apply every pending migration; return the versions applied now."""
    migrations = discover() if migrations is None else migrations
    known = migrations[-1].version if migrations else 0
    applied: list[int] = []
    with writing(engine) as conn:
        _lock(conn)
        schema_version.create(conn, checkfirst=True)
    for migration in migrations:
        with writing(engine) as conn:
            _lock(conn)
            have = current_version(conn)
            if have > known:
                raise StorageError(
                    f"database schema is version {have}, newer than this software ({known}): "
                    "upgrade the head-end"
                )
            done = conn.execute(
                select(schema_version.c.version).where(
                    schema_version.c.version == migration.version
                )
            ).first()
            if done:
                continue
            migration.upgrade(conn)
            conn.execute(
                insert(schema_version).values(
                    version=migration.version, name=migration.name, applied_at=datetime.now(UTC)
                )
            )
            applied.append(migration.version)
    return applied


def status(engine: Engine) -> list[tuple[int, str, bool]]:
    """(version, name, applied) for every known migration."""
    with engine.connect() as conn:
        have = set()
        if conn.dialect.has_table(conn, schema_version.name):
            have = set(conn.execute(select(schema_version.c.version)).scalars())
    return [(m.version, m.name, m.version in have) for m in discover()]
