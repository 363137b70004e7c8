"""One engine per process: SQLite (WAL) as the embedded default, PostgreSQL selected by URL.

SQLite gets WAL, a busy timeout, foreign keys and the configured ``synchronous`` level on every
connection, and real transactions: pysqlite's implicit transaction handling is switched off and
``BEGIN`` is emitted by SQLAlchemy (``BEGIN IMMEDIATE`` for ``writing()`` blocks, so a writer
waits for the lock up front instead of failing half-way).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, create_engine, event

if TYPE_CHECKING:
    from headend.config import DatabaseSettings

IMMEDIATE = "taiqu_immediate"


def make_engine(settings: DatabaseSettings) -> Engine:
    """Create the engine for ``settings.url`` with the pragmas and pool this head-end wants."""
    url = settings.resolved_url()
    if settings.is_sqlite:
        engine = create_engine(url, echo=settings.echo, pool_size=settings.pool_size)
        _sqlite_setup(engine, settings.sqlite_synchronous)
        return engine
    return create_engine(
        url,
        echo=settings.echo,
        pool_size=settings.pool_size,
        pool_pre_ping=True,
        connect_args={"application_name": "taiqu-headend", "options": "-c timezone=UTC"},
    )


def _sqlite_setup(engine: Engine, synchronous: str) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself (below)
        cursor = dbapi_connection.cursor()
        for pragma in (
            "journal_mode=WAL",
            f"synchronous={synchronous}",
            "foreign_keys=ON",
            "busy_timeout=30000",
            "temp_store=MEMORY",
            "cache_size=-65536",
        ):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(IMMEDIATE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


@contextmanager
def writing(engine: Engine) -> Iterator[Connection]:
    """A write transaction (``BEGIN IMMEDIATE`` on SQLite); commits on success."""
    with engine.connect() as conn:
        conn = conn.execution_options(**{IMMEDIATE: True})
        with conn.begin():
            yield conn


@contextmanager
def reading(engine: Engine) -> Iterator[Connection]:
    """A read-only transaction (one consistent snapshot)."""
    with engine.connect() as conn, conn.begin():
        yield conn
