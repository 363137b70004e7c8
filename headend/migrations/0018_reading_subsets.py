"""Partial indexes of ``readings``: daily frozen rows and negative signed values
(``headend.db.subsets``: the recompute's frozen registers and reverse-flow instants without
walking every interval row)."""

from __future__ import annotations

from sqlalchemy import Connection

from headend.db import subsets


def upgrade(conn: Connection) -> None:
    """Create the partial indexes where missing."""
    subsets.create(conn)
