"""采集成功率 where a real fleet breaks it: the configured cut-off, a meter commissioned or
retired mid-day, a gateway offline all day (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import insert

from headend.analytics import store
from headend.analytics.service import recompute
from headend.analytics.settings import AnalyticsSettings
from headend.archive import service as archive
from headend.archive.models import AreaIn, GatewayIn, MeterIn
from headend.db import reading, writing
from headend.db.tables import gateway_sessions, readings

Z = ZoneInfo("Asia/Shanghai")
D1, D2, D3 = date(2026, 3, 1), date(2026, 3, 2), date(2026, 3, 3)
SINCE = datetime(2025, 1, 1, tzinfo=UTC)
NOW = datetime(2026, 3, 10, tzinfo=UTC)


def midnight(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=Z).astimezone(UTC)


def freeze(conn, meter: str, d: date, read_after: timedelta, gw: str = "gw") -> None:
    at = midnight(d)
    conn.execute(insert(readings).values(
        meter=meter, quantity="energy.active.import.total", time=at, kind="daily_frozen",
        value="1", gateway=gw, gateway_time=at + read_after, freeze_time=at, flags=""))  # fmt: skip


def test_cutoff_commissioned_retired_and_offline(engine):
    with writing(engine) as conn:
        for gw, a in (("gw", "A"), ("gw2", "B")):
            archive.create_gateway(conn, GatewayIn(id=gw), "t", SINCE)
            archive.create_area(conn, AreaIn(id=a, gateway=gw), "t", SINCE)
        for i, m in enumerate(("early", "late", "old", "new")):
            at = midnight(D2) + timedelta(hours=10) if m == "new" else SINCE
            archive.create_meter(conn, MeterIn(id=m, area="A", bus="b", address=f"{i + 1:012d}"),
                                 "t", at)  # fmt: skip
        archive.retire_meter(conn, "old", "t", midnight(D2) + timedelta(hours=10))
        archive.create_meter(conn, MeterIn(id="b1", area="B", bus="b", address="9" * 12), "t",
                             SINCE)  # fmt: skip
        for d in (D2, D3):
            freeze(conn, "early", d, timedelta(minutes=5))
            freeze(conn, "late", d, timedelta(hours=3))  # read at 03:00: after a 2 h cut-off
        freeze(conn, "old", D2, timedelta(minutes=5))
        freeze(conn, "new", D3, timedelta(minutes=5))
        conn.execute(insert(gateway_sessions).values(gateway="gw2", state="offline",
                                                     at=midnight(D1), received=SINCE))  # fmt: skip
    recompute(engine, AnalyticsSettings(collection_cutoff_hours=2), D2, D2, NOW)
    with reading(engine) as conn:
        area = {r["day"]: r for r in store.rate_rows(conn, "area", ["A", "B"], D2, D3)
                if r["key"] == "A"}  # fmt: skip
        b = {r["day"]: r for r in store.rate_rows(conn, "area", ["B"], D2, D3)}
        gw2 = {r["day"]: r for r in store.rate_rows(conn, "gateway", ["gw2"], D2, D3)}
    # D2's freeze: early, late, old due ("new" came at 10:00); D3's: early, late, new
    assert (area["2026-03-02"]["due"], area["2026-03-02"]["collected"]) == (3, 2)
    assert area["2026-03-02"]["obtained"] == 3 and area["2026-03-02"]["success_rate"] == "0.6667"
    assert (area["2026-03-03"]["due"], area["2026-03-03"]["collected"]) == (3, 2)
    assert area["2026-03-03"]["missing"] == []
    assert b["2026-03-02"]["success_rate"] == "0.0000" and b["2026-03-02"]["missing"] == ["b1"]
    assert gw2["2026-03-02"]["online_rate"] == "0.0000"
