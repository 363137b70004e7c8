"""Scale (PostgreSQL only): ``readings`` partitioned by month, daily aggregates; SQLite: nothing.

The plain ``readings`` of 0001 is renamed aside, the partitioned table created with the same
columns and primary key plus a default partition, one partition per month that holds rows (and
the current month and three ahead), the rows copied across, and the old table dropped, all in the
migration's transaction.  ``ingested`` stayed unpartitioned (0010 replaced it by stream runs).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Connection, text

from headend.db.scale import (
    create_partition,
    ensure_partitions,
    month_start,
    reading_daily,
    scale_metadata,
)

# The API reads a meter's readings in time order (with or without a quantity): the primary key
# (meter, quantity, time, kind) serves "meter + quantity + time" and the area's latest (a
# backward scan per meter); (meter, time) serves the all-quantities page.
PARTITIONED = """
CREATE TABLE readings (LIKE readings_plain INCLUDING DEFAULTS INCLUDING CONSTRAINTS)
PARTITION BY RANGE (time)
"""


def upgrade(conn: Connection) -> None:
    """Partition ``readings`` by month and create ``reading_daily`` (PostgreSQL only)."""
    if conn.dialect.name != "postgresql":
        return
    conn.exec_driver_sql("ALTER TABLE readings RENAME TO readings_plain")
    conn.exec_driver_sql(
        "ALTER TABLE readings_plain RENAME CONSTRAINT pk_readings TO pk_readings_plain"
    )
    conn.exec_driver_sql(PARTITIONED)
    conn.exec_driver_sql(
        "ALTER TABLE readings ADD CONSTRAINT pk_readings PRIMARY KEY (meter, quantity, time, kind)"
    )
    conn.exec_driver_sql("CREATE INDEX ix_readings_meter_time ON readings (meter, time)")
    conn.exec_driver_sql("CREATE TABLE readings_default PARTITION OF readings DEFAULT")
    months = conn.execute(
        text("SELECT DISTINCT date_trunc('month', time AT TIME ZONE 'UTC') FROM readings_plain")
    ).scalars()
    for month in sorted(months):
        create_partition(conn, month_start(month.date()))
    ensure_partitions(conn, datetime.now(UTC), ahead=3)
    conn.exec_driver_sql("INSERT INTO readings SELECT * FROM readings_plain")
    conn.exec_driver_sql("DROP TABLE readings_plain")
    scale_metadata.create_all(conn, tables=[reading_daily])
