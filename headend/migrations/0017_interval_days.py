"""Per-meter daily interval aggregates: ``analytics_interval_days`` (the suspects' evidence of a
complete day, read instead of its 96 raw readings per quantity; see docs/analytics.md)."""

from __future__ import annotations

from sqlalchemy import Connection

from headend.db.analytics_tables import analytics_interval_days


def upgrade(conn: Connection) -> None:
    """Create ``analytics_interval_days`` where missing."""
    analytics_interval_days.create(conn, checkfirst=True)
