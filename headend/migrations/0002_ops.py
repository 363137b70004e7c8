"""Operations tables: users, commands, guard switches, the audit log (append-only by trigger)."""

from __future__ import annotations

from sqlalchemy import Connection, insert

from headend.audit.chain import GENESIS
from headend.db import metadata
from headend.db.ops_tables import OPS_TABLES, audit_head

PG_APPEND_ONLY = """
CREATE OR REPLACE FUNCTION taiqu_audit_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only (%% refused)', TG_OP;
END;
$$ LANGUAGE plpgsql
"""


def upgrade(conn: Connection) -> None:
    """Create the operations tables, the audit chain's head and the append-only triggers."""
    metadata.create_all(conn, tables=list(OPS_TABLES))
    conn.execute(insert(audit_head).values(id=1, last_id=0, last_hash=GENESIS))
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(PG_APPEND_ONLY)
        conn.exec_driver_sql(
            "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE OR TRUNCATE "
            "ON audit_log FOR EACH STATEMENT EXECUTE FUNCTION taiqu_audit_append_only()"
        )
    else:
        for op in ("UPDATE", "DELETE"):
            conn.exec_driver_sql(
                f"CREATE TRIGGER audit_log_no_{op.lower()} BEFORE {op} ON audit_log "
                f"BEGIN SELECT RAISE(ABORT, 'audit_log is append-only ({op} refused)'); END"
            )
