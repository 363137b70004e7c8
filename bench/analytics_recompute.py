"""Benchmark: the daily analytics recompute of areas of N meters on SQLite.

Prints the time of ``recompute`` for one day (with its 14-day suspect window and month to date)
and, as the baseline measured in the same run, the time of reading the same frozen rows once.
Usage: python bench/analytics_recompute.py [areas] [meters_per_area] [days]
"""

from __future__ import annotations

import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import insert, select

from headend.analytics.model import boundary
from headend.analytics.service import recompute
from headend.analytics.settings import AnalyticsSettings
from headend.config import DatabaseSettings
from headend.db import make_engine, reading, writing
from headend.db.migrate import upgrade
from headend.db.tables import areas, meters, readings

SINCE = datetime(2025, 1, 1, tzinfo=UTC)


def main() -> None:
    n_areas, n_meters, n_days = (int(a) for a in [*sys.argv[1:], "4", "200", "30"][:3])
    settings = AnalyticsSettings()
    zone = settings.tz
    first = date(2026, 3, 1)
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(
            DatabaseSettings(url=f"sqlite:///{Path(tmp) / 'b.db'}", sqlite_synchronous="NORMAL")
        )
        upgrade(engine)
        with writing(engine) as conn:
            for a in range(n_areas):
                conn.execute(insert(areas).values(id=f"A{a}", gateway=f"gw{a}", valid_from=SINCE))
                conn.execute(
                    insert(meters),
                    [
                        {"id": f"A{a}-{i}", "point": f"A{a}-{i}", "area": f"A{a}", "bus": "b",
                         "protocol": "dlt645-2007", "address": f"{i:012d}",
                         "role": "area_total" if i == 0 else "customer", "valid_from": SINCE}
                        for i in range(n_meters + 1)
                    ],
                )  # fmt: skip
                rows = []
                for d in range(n_days + 1):
                    t = boundary(first + timedelta(days=d), zone)
                    for i in range(n_meters + 1):
                        v = Decimal(d * (10 * n_meters * 105 // 100 if i == 0 else 10))
                        row = {"meter": f"A{a}-{i}", "quantity": "energy.active.import.total",
                               "time": t, "kind": "daily_frozen", "value": str(v),
                               "gateway": f"gw{a}", "gateway_time": t + timedelta(minutes=6),
                               "freeze_time": t, "flags": ""}  # fmt: skip
                        rows.append(row)
                conn.execute(insert(readings), rows)
        last = first + timedelta(days=n_days - 1)
        t0 = time.perf_counter()
        with reading(engine) as conn:
            n = len(conn.execute(select(readings.c.meter, readings.c.value, readings.c.time)).all())
        base = time.perf_counter() - t0
        t0 = time.perf_counter()
        recompute(engine, settings, last, last, datetime.now(UTC))
        one = time.perf_counter() - t0
        meters_total = n_areas * (n_meters + 1)
        print(f"{n_areas} areas × {n_meters + 1} meters, {n_days} days of freezes ({n} rows)")
        print(f"baseline: read every frozen row once        {base:8.3f} s")
        print(f"recompute one day (all areas)     {one:8.3f} s  = {one / base:6.1f} × baseline")
        print(f"per meter                                  {one / meters_total * 1000:8.3f} ms")
        engine.dispose()


if __name__ == "__main__":
    main()
