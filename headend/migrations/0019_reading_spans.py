"""``reading_spans``: the reading times each write of readings covered (``headend.db.bulk``).

The stored daily interval aggregates are from now on invalidated by these spans instead of
being checked against a raw row count on every recompute; the aggregates kept so far were
checked by count, so they are dropped (a cache: the next recompute computes them again).  An
index on ``analytics_interval_days.day`` makes the invalidation a lookup.
"""

from __future__ import annotations

from sqlalchemy import Connection, delete

from headend.db.analytics_tables import analytics_interval_days
from headend.db.tables import reading_spans


def upgrade(conn: Connection) -> None:
    """Create ``reading_spans`` and the day index; empty the interval aggregates."""
    reading_spans.create(conn, checkfirst=True)
    for index in analytics_interval_days.indexes:  # created with the table since 0019
        index.create(conn, checkfirst=True)
    conn.execute(delete(analytics_interval_days))
