"""Two-way energy and loss bands: ``meters.pv`` (rooftop PV: export read and counted) and
``analytics_targets.low`` (the bottom of an area's acceptable loss band).

Existing meters get ``pv = false``; existing targets keep their upper bound with the configured
default bottom.  A database created after the columns were declared (``0001``/``0004`` create the
tables as declared) already has them, so each column is added only when absent.
"""

from __future__ import annotations

from sqlalchemy import Connection, inspect

COLUMNS = {
    "meters": {"pv": "BOOLEAN NOT NULL DEFAULT false"},
    "analytics_targets": {"low": "VARCHAR(40)"},
}


def upgrade(conn: Connection) -> None:
    """Add the columns that the tables lack."""
    for table, columns in COLUMNS.items():
        present = {c["name"] for c in inspect(conn).get_columns(table)}
        for name, ddl in columns.items():
            if name not in present:
                conn.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN {name} {ddl}")
