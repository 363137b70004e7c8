"""The ingest's bulk write of readings: one statement per transaction, below SQLAlchemy's binding.

``ReadingSink`` collects the ``readings`` rows of one transaction (tuples in ``READING_COLUMNS``
order, built straight from the columns a message was decoded into) and writes them at ``flush``:

- PostgreSQL: one binary ``COPY`` straight into ``readings`` (psycopg 3 ``cursor.copy``, types
  declared, so the server parses no text), inside a savepoint.  COPY has no conflict clause: if a
  row is already stored (the same meter, quantity, time and kind reported by another record,
  e.g. a re-flashed gateway re-sending under a new epoch) the savepoint is rolled back and the
  rows go through a session-local staging table and ``INSERT … ON CONFLICT DO NOTHING``.
- SQLite: one ``INSERT OR IGNORE`` executemany, times already in the stored form (UTC text as
  SQLAlchemy's SQLite DATETIME writes it; ``stamp`` converts each distinct instant once).

Both leave exactly the rows the Core insert would, which the tests compare.  Each write also
records the span of reading times it covered (``reading_spans``: one small row per transaction,
whatever its size), which tells derived per-day facts that their day may have changed.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

import psycopg
from sqlalchemy import Connection
from sqlalchemy.exc import OperationalError

SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"
READING_COLUMNS = (
    "meter",
    "quantity",
    "time",
    "kind",
    "value",
    "gateway",
    "gateway_time",
    "meter_time",
    "meter_time_raw",
    "freeze_time",
    "flags",
    "command",
)
_PG_TYPES = [
    "timestamptz" if name in {"time", "gateway_time", "meter_time", "freeze_time"} else "varchar"
    for name in READING_COLUMNS
]
_NAMES = ", ".join(f'"{c}"' for c in READING_COLUMNS)
_SAVEPOINT = "taiqu_readings"
_TIME = itemgetter(READING_COLUMNS.index("time"))
_SPAN = "INSERT INTO reading_spans (t_min, t_max) VALUES (%s, %s)"

Row = tuple[Any, ...]


def sqlite_time(value: datetime) -> str:
    """An aware instant as SQLite stores a ``UTCDateTime``."""
    return value.astimezone(UTC).strftime(SQLITE_TIME)


class ReadingSink:
    """The ``readings`` rows of one transaction, written by ``flush`` in one statement."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.rows: list[Row] = []
        self.sqlite = conn.dialect.name == "sqlite"
        self._stamps: dict[datetime, str] = {}

    def stamp(self, value: datetime) -> Any:
        """``value`` in the form the database takes it (SQLite: text, converted once)."""
        if not self.sqlite:
            return value
        text = self._stamps.get(value)
        if text is None:
            if len(self._stamps) > 4096:
                self._stamps.clear()
            text = self._stamps[value] = sqlite_time(value)
        return text

    def flush(self) -> int:
        """Write the rows collected (rows already stored are skipped); how many were given."""
        rows, self.rows = self.rows, []
        if rows:
            write_readings(self.conn, rows)
        return len(rows)


def write_readings(conn: Connection, rows: Sequence[Row]) -> None:
    """Insert ``rows`` (``READING_COLUMNS`` order, times as ``ReadingSink.stamp`` makes them) and
    the span of their times (``reading_spans``)."""
    if not rows:
        return
    raw: Any = conn.connection.driver_connection
    times = [*map(_TIME, rows)]
    span = (min(times), max(times))
    with driver_errors("INSERT INTO readings"):
        if conn.dialect.name == "sqlite":
            marks = ", ".join("?" for _ in READING_COLUMNS)
            _executemany(raw, f"INSERT OR IGNORE INTO readings ({_NAMES}) VALUES ({marks})", rows)
            raw.execute(_SPAN.replace("%s", "?"), span)
            return
        with raw.cursor() as cursor:
            cursor.execute(f"SAVEPOINT {_SAVEPOINT}")
            try:
                _copy(cursor, "readings", rows)
            except psycopg.errors.UniqueViolation:
                cursor.execute(f"ROLLBACK TO SAVEPOINT {_SAVEPOINT}")
                _insert_ignoring_stored(cursor, rows)
            else:
                cursor.execute(f"RELEASE SAVEPOINT {_SAVEPOINT}")
            cursor.execute(_SPAN, span)


@contextmanager
def driver_errors(statement: str) -> Iterator[None]:
    """The driver's operational errors (connection lost, database locked or full) as SQLAlchemy's.

    Below SQLAlchemy the driver raises its own exceptions; the ingest tells an outage
    (``sqlalchemy.exc.OperationalError``: roll back, retry with back-off) from a message the
    database refuses (anything else: isolate it), so outages must look the same on every path.
    """
    try:
        yield
    except (psycopg.OperationalError, sqlite3.OperationalError) as exc:
        raise OperationalError(statement, None, exc) from exc


def _executemany(raw: Any, statement: str, rows: Sequence[Row]) -> None:
    raw.executemany(statement, rows)


def _copy(cursor: Any, table: str, rows: Sequence[Row]) -> None:
    with cursor.copy(f'COPY "{table}" ({_NAMES}) FROM STDIN (FORMAT BINARY)') as copy:
        copy.set_types(_PG_TYPES)
        for row in rows:
            copy.write_row(row)


def _insert_ignoring_stored(cursor: Any, rows: Sequence[Row]) -> None:
    cursor.execute(
        'CREATE TEMP TABLE IF NOT EXISTS "stage_readings" (LIKE "readings" INCLUDING DEFAULTS) '
        "ON COMMIT DELETE ROWS"
    )
    _copy(cursor, "stage_readings", rows)
    cursor.execute(
        f'INSERT INTO "readings" ({_NAMES}) SELECT {_NAMES} FROM "stage_readings" '
        "ON CONFLICT DO NOTHING"
    )
    cursor.execute('DELETE FROM "stage_readings"')


def reading_row(values: dict[str, Any], stamp: Any) -> Row:
    """A ``readings`` row given as a mapping, in ``READING_COLUMNS`` order (times stamped)."""
    return tuple(
        stamp(v) if isinstance(v, datetime) else v for v in (values[c] for c in READING_COLUMNS)
    )
