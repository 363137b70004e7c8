"""Migration 0007 on a database migrated before it (columns absent), on both backends."""

from __future__ import annotations

import importlib

from sqlalchemy import Engine, inspect

from headend.db import writing

M0007 = importlib.import_module("headend.migrations.0007_money")


def test_0007_adds_what_an_older_database_lacks_and_is_idempotent(engine: Engine) -> None:
    with writing(engine) as conn:  # as a database migrated by 0001–0006 looks
        conn.exec_driver_sql("DROP INDEX ix_prepay_ledger_unbilled")
        conn.exec_driver_sql("ALTER TABLE prepay_ledger DROP COLUMN bill")
        conn.exec_driver_sql("ALTER TABLE prepay_accounts DROP COLUMN customer_class")
        conn.exec_driver_sql("ALTER TABLE prepay_accounts DROP COLUMN tier_extra")
        conn.exec_driver_sql("DROP TABLE vee_flags")
        conn.exec_driver_sql(
            "INSERT INTO prepay_accounts (id, name, mode, language, contacts, overdraft_micro,"
            " created_by, created_at, stage, cycle, supply) VALUES ('old', '', 'postpaid', 'zh',"
            " '[]', 0, 't', '2026-01-01 00:00:00', 'ok', 0, 'on')"
        )
    for _ in range(2):
        with writing(engine) as conn:
            M0007.upgrade(conn)
    with writing(engine) as conn:
        insp = inspect(conn)
        assert "bill" in {c["name"] for c in insp.get_columns("prepay_ledger")}
        assert "vee_flags" in insp.get_table_names()
        assert "ix_prepay_ledger_unbilled" in {i["name"] for i in insp.get_indexes("prepay_ledger")}
        cls = conn.exec_driver_sql(
            "SELECT customer_class FROM prepay_accounts WHERE id = 'old'"
        ).scalar()
    assert cls == "residential"
