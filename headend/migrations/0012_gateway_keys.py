"""Signed uplink: ``gateway_keys``, the gateways' Ed25519 public keys (security.gateway_keys).

A database created after the table was declared does not have it either (it is not one of
``0001``'s core tables), so it is created here, once.
"""

from __future__ import annotations

from sqlalchemy import Connection

from headend.db.tables import gateway_keys


def upgrade(conn: Connection) -> None:
    """Create ``gateway_keys`` where missing."""
    gateway_keys.create(conn, checkfirst=True)
