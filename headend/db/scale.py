"""PostgreSQL at utility scale: monthly ``readings`` partitions, daily aggregates, retention.

Layout (PostgreSQL only; SQLite keeps the plain table of migration 0001)::

    readings                  PARTITION BY RANGE (time), primary key (meter, quantity, time, kind)
    ├── readings_p202601      [2026-01-01, 2026-02-01) UTC   one per month, created ahead
    ├── readings_p202602      …
    └── readings_default      DEFAULT: whatever no monthly partition covers (never rejected)
    reading_daily             (meter, quantity, day) → first/last/min/max of cumulative registers

Idempotency is not asked of ``readings``' key (a unique constraint on a partitioned table must
include the partition key): the ``streams`` rows say which records each gateway stream holds
(``headend.ingest.streams``).

``ensure_partitions`` creates the months ahead and moves any rows the default partition holds for
a new month into it (ATTACH would refuse otherwise).  ``aggregate_days`` merges readings of a time
range into ``reading_daily`` (first/last by time, min/max by value; merging makes it idempotent
and order-free, so a day split over two partitions or re-aggregated late comes out the same).
``apply_retention`` drops monthly partitions wholly older than ``keep_months`` only after
aggregating them and checking every (meter, quantity, day) they hold has its aggregate row.

Every maintenance call takes one transaction-level advisory lock, so several head-end instances
may run the job at once: one does the work, the others wait and then find nothing to do.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from sqlalchemy import (
    Column,
    Date,
    Engine,
    Index,
    MetaData,
    Numeric,
    PrimaryKeyConstraint,
    String,
    Table,
    text,
)
from sqlalchemy.engine import Connection

from headend.db.engine import writing
from headend.db.errors import StorageError
from headend.db.types import UTCDateTime
from protocols.quantities import QUANTITIES, Kind

__all__ = [
    "CUMULATIVE",
    "MAINTENANCE_LOCK",
    "PARTITION",
    "MaintenanceReport",
    "aggregate_days",
    "apply_retention",
    "ensure_partitions",
    "is_partitioned",
    "maintain",
    "month_start",
    "partitions",
    "reading_daily",
    "scale_metadata",
]

MAINTENANCE_LOCK = 0x7461_6973  # "tais": one maintenance run at a time across instances
PARTITION = re.compile(r"^readings_p(\d{4})(\d{2})$")
CUMULATIVE = tuple(sorted(q.name for q in QUANTITIES.values() if q.kind is Kind.CUMULATIVE))
NUMERIC_TEXT = r"^-?[0-9]+(\.[0-9]+)?$"

# PostgreSQL-only tables live on their own MetaData so SQLite schemas never see them.
scale_metadata = MetaData()

reading_daily = Table(
    "reading_daily",
    scale_metadata,
    Column("meter", String(32), nullable=False),
    Column("quantity", String(64), nullable=False),
    Column("day", Date, nullable=False),  # the day in the aggregation time zone
    Column("first_time", UTCDateTime, nullable=False),
    Column("first_value", String(64), nullable=False),
    Column("last_time", UTCDateTime, nullable=False),
    Column("last_value", String(64), nullable=False),
    Column("min_value", Numeric, nullable=False),
    Column("max_value", Numeric, nullable=False),
    PrimaryKeyConstraint("meter", "quantity", "day", name="pk_reading_daily"),
    Index("ix_reading_daily_day", "day"),
)


def month_start(t: datetime | date) -> date:
    """The first day of ``t``'s month (UTC for instants)."""
    if isinstance(t, datetime):
        t = t.astimezone(UTC).date()
    return t.replace(day=1)


def _add_months(d: date, n: int) -> date:
    index = d.year * 12 + d.month - 1 + n
    return date(index // 12, index % 12 + 1, 1)


def _bound(d: date) -> str:
    return f"{d.isoformat()} 00:00:00+00"


def _name(month: date) -> str:
    return f"readings_p{month.year:04d}{month.month:02d}"


def is_partitioned(conn: Connection) -> bool:
    """Whether ``readings`` is a partitioned table (PostgreSQL after migration 0005)."""
    if conn.dialect.name != "postgresql":
        return False
    kind = conn.execute(text("SELECT relkind FROM pg_class WHERE oid = 'readings'::regclass"))
    return bool(kind.scalar_one() == "p")


def partitions(conn: Connection) -> list[date]:
    """The months that have their own partition, oldest first."""
    rows = conn.execute(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'readings'::regclass"
        )
    ).scalars()
    months = []
    for name in rows:
        if m := PARTITION.match(name):
            months.append(date(int(m.group(1)), int(m.group(2)), 1))
    return sorted(months)


def _lock(conn: Connection) -> None:
    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MAINTENANCE_LOCK})


def create_partition(conn: Connection, month: date) -> bool:
    """Create ``month``'s partition, moving rows the default partition holds for it; True if new."""
    month = month_start(month)
    if month in partitions(conn):
        return False
    name, lo, hi = _name(month), _bound(month), _bound(_add_months(month, 1))
    # A standalone table filled from the default partition, then attached: ATTACH checks the
    # default holds nothing of the range, which the move guarantees.
    conn.exec_driver_sql(f'CREATE TABLE "{name}" (LIKE readings INCLUDING DEFAULTS)')
    conn.exec_driver_sql(
        f"WITH moved AS (DELETE FROM readings_default WHERE time >= %(lo)s AND time < %(hi)s "
        f'RETURNING *) INSERT INTO "{name}" SELECT * FROM moved',
        {"lo": lo, "hi": hi},
    )
    conn.exec_driver_sql(
        f"ALTER TABLE readings ATTACH PARTITION \"{name}\" FOR VALUES FROM ('{lo}') TO ('{hi}')"
    )
    return True


def ensure_partitions(
    conn: Connection, now: datetime, ahead: int = 3, behind: int = 0
) -> list[date]:
    """Create the partitions from ``behind`` months before ``now`` to ``ahead`` after it."""
    _lock(conn)
    here = month_start(now)
    made = []
    for n in range(-behind, ahead + 1):
        month = _add_months(here, n)
        if create_partition(conn, month):
            made.append(month)
    return made


_AGGREGATE = """
INSERT INTO reading_daily AS d
    (meter, quantity, day, first_time, first_value, last_time, last_value, min_value, max_value)
SELECT meter, quantity, (time AT TIME ZONE %(tz)s)::date,
       min(time), (array_agg(value ORDER BY time, kind))[1],
       max(time), (array_agg(value ORDER BY time DESC, kind))[1],
       min(value::numeric), max(value::numeric)
FROM readings
WHERE time >= %(lo)s AND time < %(hi)s AND quantity = ANY(%(names)s)
  AND value ~ %(numeric)s
GROUP BY 1, 2, 3
ON CONFLICT (meter, quantity, day) DO UPDATE SET
    first_value = CASE WHEN excluded.first_time < d.first_time
                       THEN excluded.first_value ELSE d.first_value END,
    first_time = LEAST(d.first_time, excluded.first_time),
    last_value = CASE WHEN excluded.last_time > d.last_time
                      THEN excluded.last_value ELSE d.last_value END,
    last_time = GREATEST(d.last_time, excluded.last_time),
    min_value = LEAST(d.min_value, excluded.min_value),
    max_value = GREATEST(d.max_value, excluded.max_value)
"""


def aggregate_days(conn: Connection, start: datetime, end: datetime, tz: str = "UTC") -> int:
    """Merge the cumulative readings in ``[start, end)`` into ``reading_daily``; rows touched."""
    result = conn.exec_driver_sql(
        _AGGREGATE,
        {"tz": tz, "lo": start, "hi": end, "names": list(CUMULATIVE), "numeric": NUMERIC_TEXT},
    )
    return int(result.rowcount or 0)


def _missing_aggregates(conn: Connection, table: str, tz: str) -> int:
    """How many (meter, quantity, day) of ``table``'s cumulative readings lack an aggregate."""
    return int(
        conn.exec_driver_sql(
            f"SELECT count(*) FROM (SELECT DISTINCT meter, quantity, "
            f'(time AT TIME ZONE %(tz)s)::date AS day FROM "{table}" '
            f"WHERE quantity = ANY(%(names)s) AND value ~ %(numeric)s) r "
            "WHERE NOT EXISTS (SELECT 1 FROM reading_daily d WHERE d.meter = r.meter "
            "AND d.quantity = r.quantity AND d.day = r.day)",
            {"tz": tz, "names": list(CUMULATIVE), "numeric": NUMERIC_TEXT},
        ).scalar_one()
    )


def apply_retention(
    conn: Connection, now: datetime, keep_months: int, tz: str = "UTC"
) -> list[date]:
    """Drop the monthly partitions wholly older than ``keep_months`` once aggregated; their months.

    Rows of that age in the default partition are aggregated and deleted too.
    """
    if keep_months < 1:
        raise ValueError("keep_months must be at least 1")
    _lock(conn)
    cutoff = _add_months(month_start(now), -keep_months)
    dropped = []
    for month in partitions(conn):
        if _add_months(month, 1) > cutoff:
            continue
        lo = datetime.combine(month, datetime.min.time(), UTC)
        hi = datetime.combine(_add_months(month, 1), datetime.min.time(), UTC)
        aggregate_days(conn, lo, hi, tz)
        name = _name(month)
        if (missing := _missing_aggregates(conn, name, tz)) != 0:
            raise StorageError(f"{name}: {missing} day aggregates missing; partition kept")
        conn.exec_driver_sql(f'ALTER TABLE readings DETACH PARTITION "{name}"')
        conn.exec_driver_sql(f'DROP TABLE "{name}"')
        dropped.append(month)
    hi = datetime.combine(cutoff, datetime.min.time(), UTC)
    old_default = conn.exec_driver_sql(
        "SELECT min(time) FROM readings_default WHERE time < %(hi)s", {"hi": hi}
    ).scalar_one()
    if old_default is not None:
        aggregate_days(conn, old_default, hi, tz)
        conn.exec_driver_sql("DELETE FROM readings_default WHERE time < %(hi)s", {"hi": hi})
    return dropped


@dataclass
class MaintenanceReport:
    """What one maintenance run did."""

    created: list[date] = field(default_factory=list)
    aggregated: int = 0
    dropped: list[date] = field(default_factory=list)


def maintain(
    engine: Engine,
    now: datetime,
    *,
    ahead: int = 3,
    keep_months: int | None = None,
    aggregate_lookback_days: int = 7,
    tz: str = "UTC",
) -> MaintenanceReport:
    """The periodic job: partitions ahead, recent days aggregated, retention.

    A no-op on SQLite (one embedded database keeps the plain table).
    """
    report = MaintenanceReport()
    if engine.dialect.name != "postgresql":
        return report
    with writing(engine) as conn:
        if not is_partitioned(conn):
            raise StorageError("readings is not partitioned: run `taiqu headend migrate` (0005)")
        report.created = ensure_partitions(conn, now, ahead)
    with writing(engine) as conn:
        _lock(conn)
        start = datetime.fromtimestamp(now.timestamp() - aggregate_lookback_days * 86400, UTC)
        report.aggregated = aggregate_days(conn, start, now, tz)
    if keep_months is not None:
        with writing(engine) as conn:
            report.dropped = apply_retention(conn, now, keep_months, tz)
    return report
