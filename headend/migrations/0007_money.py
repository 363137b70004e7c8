"""Money you can defend: the VEE tables (validation failures, contract capacities) and the new
prepayment columns (bill cut-off, customer class, payment reversals).

A database created after a column was declared already has it (``0003`` creates the prepayment
tables as ``headend/db/prepay_tables.py`` declares them), so each column is added only when absent.
"""

from __future__ import annotations

from sqlalchemy import Connection, inspect

from headend.db import metadata
from headend.vee.tables import VEE_TABLES

COLUMNS: dict[str, dict[str, str]] = {
    "prepay_accounts": {
        "customer_class": "VARCHAR(32) NOT NULL DEFAULT 'residential'",
        "tier_extra": "VARCHAR(40) NOT NULL DEFAULT '0'",
    },
    "prepay_ledger": {"bill": "VARCHAR(80)"},
}
INDEXES = {"ix_prepay_ledger_unbilled": "prepay_ledger (account, bill)"}


def upgrade(conn: Connection) -> None:
    """Create the VEE tables; add the prepayment columns a table lacks."""
    metadata.create_all(conn, tables=list(VEE_TABLES))
    inspector = inspect(conn)
    for table, columns in COLUMNS.items():
        present = {c["name"] for c in inspector.get_columns(table)}
        for name, ddl in columns.items():
            if name not in present:
                conn.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN {name} {ddl}")
    have = {i["name"] for i in inspector.get_indexes("prepay_ledger")}
    for name, where in INDEXES.items():
        if name not in have:
            conn.exec_driver_sql(f"CREATE INDEX {name} ON {where}")
