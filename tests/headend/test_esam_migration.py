"""Migration 0011: ``meters.esam`` (false for meters archived before it) and ``esam_steps``."""

from __future__ import annotations

from sqlalchemy import Engine, delete, inspect, select

from headend.db import writing
from headend.db.migrate import schema_version, upgrade
from headend.db.tables import meters
from tests.headend.ops_support import seed_archive


def test_0011_adds_the_flag_to_an_existing_archive_and_creates_the_steps(engine: Engine) -> None:
    with writing(engine) as conn:  # back to a version-6 database holding meters
        conn.exec_driver_sql("DROP TABLE esam_steps")
        conn.exec_driver_sql("ALTER TABLE meters DROP COLUMN esam")
        conn.execute(delete(schema_version).where(schema_version.c.version == 11))
    with writing(engine) as conn:
        conn.exec_driver_sql(
            "INSERT INTO meters (id, point, area, bus, protocol, address, multiplier, role, "
            "customer, tariff_category, keep_power, valid_from, changed_by) VALUES ('old', 'old', "
            "'A1', 'bus1', 'dlt645-2007', '000000000001', '1', 'customer', '', '', FALSE, "
            "'2025-01-01 00:00:00', '')"
        )
    assert upgrade(engine) == [11]
    names = {c["name"] for c in inspect(engine).get_columns("meters")}
    assert "esam" in names and inspect(engine).has_table("esam_steps")
    with engine.connect() as conn:
        assert conn.execute(select(meters.c.esam).where(meters.c.id == "old")).scalar() is False
    assert upgrade(engine) == []
    seed_archive(engine)  # the declared table and the migrated one agree
