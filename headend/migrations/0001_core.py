"""Core tables: meter archive, gateway state, ingest bookkeeping, readings, events."""

from __future__ import annotations

from sqlalchemy import Connection

from headend.db.tables import CORE_TABLES, metadata


def upgrade(conn: Connection) -> None:
    """Create the core tables as declared in headend.db.tables at version 1."""
    metadata.create_all(conn, tables=CORE_TABLES)
