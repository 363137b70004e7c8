"""Fast paths for the ingest's bulk inserts (the one place that bypasses SQLAlchemy's row binding).

PostgreSQL: rows are COPYed into a session-local staging table, then moved with
``INSERT … SELECT … ON CONFLICT DO NOTHING`` in the same transaction (COPY has no conflict
clause).  SQLite: one ``INSERT OR IGNORE`` executemany with values already in the stored form
(UTC instants as the text SQLAlchemy's SQLite DATETIME writes).  Both leave the exact rows the
Core insert would, which the tests compare.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Table

from headend.db.dialect import insert_ignore

SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime(SQLITE_TIME)
    return value


def insert_ignore_many(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert ``rows`` into ``table``, skipping rows whose key is already stored."""
    _insert(conn, table, rows, ignore=True)


def insert_many(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert ``rows`` into ``table`` (a duplicate key raises, as a plain INSERT would)."""
    _insert(conn, table, rows, ignore=False)


def _insert(conn: Connection, table: Table, rows: Sequence[dict[str, Any]], ignore: bool) -> None:
    if not rows:
        return
    columns = [c.name for c in table.columns if c.name in rows[0]]
    if conn.dialect.name == "postgresql":
        if ignore:
            _pg_copy(conn, table, columns, rows)
        else:
            _pg_copy_direct(conn, table.name, columns, rows)
    elif conn.dialect.name == "sqlite":
        names = ", ".join(f'"{c}"' for c in columns)
        marks = ", ".join("?" for _ in columns)
        verb = "INSERT OR IGNORE" if ignore else "INSERT"
        conn.exec_driver_sql(
            f'{verb} INTO "{table.name}" ({names}) VALUES ({marks})',
            [tuple(_sqlite_value(r[c]) for c in columns) for r in rows],
        )
    else:  # pragma: no cover
        conn.execute(insert_ignore(conn, table), list(rows))


def _pg_copy(
    conn: Connection, table: Table, columns: list[str], rows: Sequence[dict[str, Any]]
) -> None:
    stage = f"stage_{table.name}"
    names = ", ".join(f'"{c}"' for c in columns)
    conn.exec_driver_sql(
        f'CREATE TEMP TABLE IF NOT EXISTS "{stage}" (LIKE "{table.name}" INCLUDING DEFAULTS) '
        "ON COMMIT DELETE ROWS"
    )
    _pg_copy_direct(conn, stage, columns, rows)
    conn.exec_driver_sql(
        f'INSERT INTO "{table.name}" ({names}) SELECT {names} FROM "{stage}" ON CONFLICT DO NOTHING'
    )
    conn.exec_driver_sql(f'DELETE FROM "{stage}"')


def _pg_copy_direct(
    conn: Connection, table: str, columns: list[str], rows: Sequence[dict[str, Any]]
) -> None:
    names = ", ".join(f'"{c}"' for c in columns)
    raw = conn.connection.driver_connection
    assert raw is not None
    with raw.cursor() as cursor, cursor.copy(f'COPY "{table}" ({names}) FROM STDIN') as copy:
        for r in rows:
            copy.write_row([r[c] for c in columns])
