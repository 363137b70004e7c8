"""Log-in throttling: ``login_throttle`` (failures, back-off and lockouts per user and address).

The table is declared in ``headend.auth.throttle``; created only when absent.
"""

from __future__ import annotations

from sqlalchemy import Connection

from headend.auth.throttle import login_throttle
from headend.db import metadata


def upgrade(conn: Connection) -> None:
    """Create ``login_throttle`` and its index."""
    metadata.create_all(conn, tables=[login_throttle])
