"""ESAM meters: the archive's ``meters.esam`` flag and ``esam_steps`` (the secured flow's steps).

A database created after these were declared already has them (``0001`` creates ``meters`` and
``0002`` the ops tables as declared), so each is added only when absent.
"""

from __future__ import annotations

from sqlalchemy import Connection, inspect

from headend.db.ops_tables import esam_steps


def upgrade(conn: Connection) -> None:
    """Add ``meters.esam`` and create ``esam_steps`` where missing."""
    present = {c["name"] for c in inspect(conn).get_columns("meters")}
    if "esam" not in present:
        conn.exec_driver_sql("ALTER TABLE meters ADD COLUMN esam BOOLEAN NOT NULL DEFAULT FALSE")
    esam_steps.create(conn, checkfirst=True)
    for index in esam_steps.indexes:
        index.create(conn, checkfirst=True)
