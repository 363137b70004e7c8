"""0008 adds ``meters.pv`` and ``analytics_targets.low`` to a database made before them."""

from __future__ import annotations

import importlib
from datetime import UTC, datetime

from sqlalchemy import inspect, text

from headend.db import writing

M0008 = importlib.import_module("headend.migrations.0008_two_way_bands")


def test_columns_are_added_once_with_defaults(engine):
    with writing(engine) as conn:  # the database as it was before 0008
        conn.execute(text("ALTER TABLE meters DROP COLUMN pv"))
        conn.execute(text("ALTER TABLE analytics_targets DROP COLUMN low"))
        conn.execute(
            text("INSERT INTO meters (id, point, area, bus, protocol, address, multiplier, role, "
                 "customer, tariff_category, keep_power, valid_from, changed_by) VALUES ('m1', "
                 "'m1', 'A', 'b', 'dlt645-2007', '000000000001', '1', 'customer', '', '', false, "
                 ":t, 'x')"),
            {"t": datetime(2026, 1, 1, tzinfo=UTC)},
        )  # fmt: skip
    with writing(engine) as conn:
        M0008.upgrade(conn)
        M0008.upgrade(conn)  # idempotent: a database created with the columns already has them
    with engine.connect() as conn:
        assert "pv" in {c["name"] for c in inspect(conn).get_columns("meters")}
        assert "low" in {c["name"] for c in inspect(conn).get_columns("analytics_targets")}
        assert conn.execute(text("SELECT pv FROM meters WHERE id = 'm1'")).scalar_one() in (
            0,
            False,
        )
