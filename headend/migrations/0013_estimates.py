"""Estimation (VEE's E): the ``vee_estimates`` table of estimated intervals and their true-ups."""

from __future__ import annotations

from sqlalchemy import Connection

from headend.vee.tables import ESTIMATE_TABLES


def upgrade(conn: Connection) -> None:
    """Create ``vee_estimates`` (and its indexes) where missing."""
    for table in ESTIMATE_TABLES:
        table.create(conn, checkfirst=True)
