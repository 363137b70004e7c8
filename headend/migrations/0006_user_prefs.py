"""Per-user console preferences: ``users.language`` (zh|en) and ``users.timezone`` (IANA name).

Existing users get the defaults (Chinese, Asia/Shanghai).  A database created after the columns
were declared already has them (``0002`` creates ``users`` as ``headend/db/ops_tables.py``
declares it), so each column is added only when absent.
"""

from __future__ import annotations

from sqlalchemy import Connection, inspect

COLUMNS = {
    "language": "VARCHAR(8) NOT NULL DEFAULT 'zh'",
    "timezone": "VARCHAR(64) NOT NULL DEFAULT 'Asia/Shanghai'",
}


def upgrade(conn: Connection) -> None:
    """Add the preference columns that ``users`` lacks."""
    present = {c["name"] for c in inspect(conn).get_columns("users")}
    for name, ddl in COLUMNS.items():
        if name not in present:
            conn.exec_driver_sql(f"ALTER TABLE users ADD COLUMN {name} {ddl}")
