"""Prepayment: tariffs, accounts, charges, ledger, payments, reminders, notifications, actions."""

from __future__ import annotations

from sqlalchemy import Connection

from headend.db import metadata
from headend.db.prepay_tables import PREPAY_TABLES


def upgrade(conn: Connection) -> None:
    """Create the prepayment tables as declared in headend.db.prepay_tables at version 3."""
    metadata.create_all(conn, tables=list(PREPAY_TABLES))
