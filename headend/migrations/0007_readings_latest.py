"""``readings_latest``: the newest reading per (meter, quantity), kept by a trigger on ``readings``.

"The latest readings of an area" otherwise probes every meter's index backwards, on PostgreSQL
through every monthly partition.  A trigger keeps this small table current for every writer (the
ingest, imports, tests), in the transaction that inserts the readings:

- PostgreSQL: one statement-level ``AFTER INSERT`` trigger with a transition table, so a batch
  of readings costs one upsert of its newest row per (meter, quantity), not one per row.
- SQLite: a row-level ``AFTER INSERT`` trigger (SQLite has no statement-level triggers).

A row is replaced only by a strictly newer ``time``; rows a conflict clause skipped never reach
the trigger.  The rows already stored are copied in by the migration.
"""

from __future__ import annotations

from sqlalchemy import Connection

from headend.db.tables import readings_latest

COLUMNS = [c.name for c in readings_latest.columns]
NAMES = ", ".join(f'"{c}"' for c in COLUMNS)
UPDATES = ", ".join(f'"{c}" = excluded."{c}"' for c in COLUMNS if c not in ("meter", "quantity"))

PG_FUNCTION = f"""
CREATE FUNCTION readings_latest_upsert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO readings_latest ({NAMES})
    SELECT DISTINCT ON (meter, quantity) {NAMES} FROM new_rows
    ORDER BY meter, quantity, time DESC, kind
    ON CONFLICT (meter, quantity) DO UPDATE SET {UPDATES}
    WHERE readings_latest.time < excluded.time;
    RETURN NULL;
END
$$
"""

PG_TRIGGER = """
CREATE TRIGGER readings_latest_upsert AFTER INSERT ON readings
REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION readings_latest_upsert()
"""

PG_FILL = f"""
INSERT INTO readings_latest ({NAMES})
SELECT DISTINCT ON (meter, quantity) {NAMES} FROM readings ORDER BY meter, quantity, time DESC, kind
"""

SQLITE_TRIGGER = f"""
CREATE TRIGGER readings_latest_upsert AFTER INSERT ON readings
BEGIN
    INSERT INTO readings_latest ({NAMES}) VALUES ({", ".join(f"NEW.{c}" for c in COLUMNS)})
    ON CONFLICT (meter, quantity) DO UPDATE SET {UPDATES}
    WHERE readings_latest.time < excluded.time;
END
"""

# SQLite takes the bare columns of a max() aggregate from the row that holds the maximum.
SQLITE_FILL = f"""
INSERT INTO readings_latest ({NAMES})
SELECT {", ".join("max(time)" if c == "time" else f'"{c}"' for c in COLUMNS)}
FROM readings GROUP BY meter, quantity
"""


def upgrade(conn: Connection) -> None:
    """Create ``readings_latest``, fill it from ``readings`` and install the trigger."""
    readings_latest.create(conn)
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(PG_FILL)
        conn.exec_driver_sql(PG_FUNCTION)
        conn.exec_driver_sql(PG_TRIGGER)
    else:
        conn.exec_driver_sql(SQLITE_FILL)
        conn.exec_driver_sql(SQLITE_TRIGGER)
