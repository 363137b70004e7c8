"""Reading quality: a register standing still is ``stopped`` only while the meter is supplied and
loaded — not for an arrears disconnection (relay open) or an empty home (no current)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal as D

from sqlalchemy import insert

from headend.analytics import store
from headend.analytics.collection import reading_checks
from headend.analytics.model import boundary
from headend.analytics.service import recompute
from headend.analytics.settings import AnalyticsSettings
from headend.db import reading, writing
from headend.db.tables import areas, gateways, meters, readings

DAY = date(2026, 3, 1)


def test_relay_open_and_no_load_days_do_not_count_as_stopped():
    days = [DAY + timedelta(days=i) for i in range(6)]
    values = dict.fromkeys(days, D(500))
    supplied = dict.fromkeys(days, True)

    def kinds(**kw):
        return [(f.kind, dict(f.detail)) for f in reading_checks(
            "m", values, max_kwh_per_day=D(300), supplied=supplied, **kw)]  # fmt: skip

    assert kinds() == [("stopped", {"days": "3", "load": "unknown"})]
    assert kinds(relay_open=days) == []
    assert kinds(peak_current=dict.fromkeys(days, D("0.05"))) == []
    loaded = {**dict.fromkeys(days, D("0.05")), **dict.fromkeys(days[:3], D("4.1"))}
    assert kinds(peak_current=loaded) == [("stopped", {"days": "3", "load": "up to 4.1 A"})]
    # the relay reopened for two days in the middle: no run of three supplied still days
    assert kinds(relay_open=[days[1], days[3]]) == []


def test_quality_flags_only_the_meter_that_stands_still_under_load(engine):
    """c: disconnected for arrears (relay open, no current); v: an empty home (a few mA of
    standby, register still); s: a stopped meter (current flows, register still); e: in use."""
    zone = AnalyticsSettings().tz
    since = datetime(2025, 1, 1, tzinfo=UTC)
    last = date(2026, 3, 14)
    first = last - timedelta(days=10)
    parts = (("T", "area_total"), ("c", "customer"), ("v", "customer"), ("s", "customer"),
             ("e", "customer"))  # fmt: skip
    with writing(engine) as conn:
        conn.execute(insert(gateways).values(id="gw", valid_from=since))
        conn.execute(insert(areas).values(id="A", gateway="gw", valid_from=since))
        base = {"area": "A", "bus": "b", "protocol": "dlt645-2007", "valid_from": since}
        for n, (m, role) in enumerate(parts):
            conn.execute(
                insert(meters).values(id=m, point=m, address=f"{n:012d}", role=role, **base)
            )
        rows = []
        value = dict.fromkeys("Tcvse", D(1000))
        use = {"c": D(0), "v": D(0), "s": D(0), "e": D(9)}
        amps = {"c": "0.00", "v": "0.04", "s": "3.80", "e": "1.60"}
        for i in range(12):
            at = boundary(first + timedelta(days=i), zone)
            for m in "Tcvse":
                rows.append({"meter": m, "quantity": "energy.active.import.total", "time": at,
                             "kind": "daily_frozen", "value": str(value[m]), "gateway": "gw",
                             "gateway_time": at, "freeze_time": at, "flags": ""})  # fmt: skip
            for m, used in use.items():
                value[m] += used
            value["T"] += D(9) + D(14)  # e's use and s's unregistered use, plus losses
            for h in range(2, 24, 4):
                t = at + timedelta(hours=h)
                for m in "cvse":
                    rows.append({"meter": m, "quantity": "current.a", "time": t,
                                 "kind": "interval", "value": amps[m], "gateway": "gw",
                                 "gateway_time": t, "freeze_time": None, "flags": ""})  # fmt: skip
                rows.append({"meter": "c", "quantity": "relay.state", "time": t,
                             "kind": "interval", "value": "open", "gateway": "gw",
                             "gateway_time": t, "freeze_time": None, "flags": ""})  # fmt: skip
        conn.execute(insert(readings), rows)
    recompute(engine, AnalyticsSettings(), last, last, datetime(2026, 3, 20, tzinfo=UTC))
    with reading(engine) as conn:
        _, found = store.quality_rows(conn, "A", last)
    stopped = {r["meter"]: r["detail"] for r in found if r["kind"] == "stopped"}
    assert set(stopped) == {"s"}, found
    assert stopped["s"]["load"] == "up to 3.80 A"
