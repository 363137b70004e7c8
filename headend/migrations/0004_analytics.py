"""Analytics tables: line loss, suspects, inspections, collection, quality, targets, job runs."""

from __future__ import annotations

from sqlalchemy import Connection

from headend.db import metadata
from headend.db.analytics_tables import ANALYTICS_TABLES


def upgrade(conn: Connection) -> None:
    """Create the analytics tables as declared in headend.db.analytics_tables at version 4."""
    metadata.create_all(conn, tables=ANALYTICS_TABLES)
