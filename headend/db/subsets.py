"""Partial indexes of ``readings``: the few rows some queries want out of the many.

A day of a 15-minute meter is ~96 interval rows per quantity and one daily frozen row; a
negative current or power is rarer still.  The primary key ``(meter, quantity, time, kind)``
orders a quantity's rows by time whatever their kind, so a query for the frozen rows (or the
negative ones) of a period walks every interval row of it.  These indexes hold only the rows
wanted, so such a query reads only them; their upkeep on ingest is one index entry per wanted
row.

A database uses a partial index only when the query's condition contains the index's own
condition (literally, on SQLite): queries select these rows with ``FROZEN_ROWS`` and
``NEGATIVE_ROWS``, rendered with literals, not parameters.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

from protocols.model import ReadingKind

FROZEN = ReadingKind.DAILY_FROZEN.value
# signed instantaneous quantities (a negative value is energy flowing backwards through a meter)
SIGNED = ("current.a", "current.b", "current.c", "power.active.total", "power.active.a",
          "power.active.b", "power.active.c")  # fmt: skip

_FROZEN_SQL = f"kind = '{FROZEN}'"
_NEGATIVE_SQL = "substr(value, 1, 1) = '-' AND quantity IN ({})".format(
    ", ".join(f"'{q}'" for q in SIGNED)
)
INDEXES = {
    "ix_readings_frozen": ("meter, quantity, time", _FROZEN_SQL),
    "ix_readings_negative": ("meter, quantity, time", _NEGATIVE_SQL),
}


# the same conditions in queries (``text``: the literals reach the database as written)
FROZEN_ROWS = text(_FROZEN_SQL.replace("kind", "readings.kind"))
NEGATIVE_ROWS = text(
    _NEGATIVE_SQL.replace("value", "readings.value").replace("quantity", "readings.quantity")
)


def create(conn: Connection) -> None:
    """Create the partial indexes where missing (SQLite and PostgreSQL; on a partitioned
    ``readings`` PostgreSQL creates them on every partition)."""
    for name, (columns, where) in INDEXES.items():
        conn.exec_driver_sql(f"CREATE INDEX IF NOT EXISTS {name} ON readings ({columns}) "
                             f"WHERE {where}")  # fmt: skip
