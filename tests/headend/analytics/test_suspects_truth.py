"""Suspects against simulated truth through the database: context, long-standing theft, ranking.

A labelled area (``simulators.grid``): healthy homes, PV, vacant and seasonal homes, arrears
disconnections, bypass theft of 20–80 %, cover-open tampering, neutral bypass and a bridged relay,
all stealing since before the data starts (no change point).  Stored as a gateway would store it
(daily freezes, 30-minute interval readings), recomputed, read back.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from headend.analytics import store
from headend.analytics.intervals import MeterIntervals
from headend.analytics.service import recompute
from headend.analytics.settings import AnalyticsSettings
from headend.db import reading
from simulators.grid import GridConfig, simulate
from tests.headend.analytics.grid_db import store_archive, store_readings

MIX = {"pv": 0.1, "vacant": 0.08, "seasonal": 0.04, "disconnected": 0.05, "bypass": 0.06,
       "cover_open": 0.02, "neutral_bypass": 0.02, "relay_bypass": 0.02}  # fmt: skip
CONTEXT = ("pv", "vacant", "seasonal", "disconnected")


@pytest.fixture(scope="module")
def ranked(tmp_path_factory):
    from headend.config import DatabaseSettings
    from headend.db import make_engine
    from headend.db.migrate import upgrade

    cfg = GridConfig(areas=1, customers=100, days=7, step_minutes=30, mix=MIX, seed=11)
    run = simulate(cfg)
    path = tmp_path_factory.mktemp("suspects") / "h.db"
    engine = make_engine(DatabaseSettings(url=f"sqlite:///{path}"))
    upgrade(engine)
    store_archive(engine, run)
    store_readings(engine, run, interval_every=1, interval_days=4)
    settings = AnalyticsSettings(interval_minutes=30, suspect_days=4, profile_days=4)
    last = cfg.start + timedelta(days=cfg.days - 1)
    recompute(engine, settings, last, last, datetime(2026, 3, 9, tzinfo=UTC))
    with reading(engine) as conn:
        day, rows = store.suspect_rows(conn, "A1", None)
    engine.dispose()
    assert day == last.isoformat()
    return run, rows


def test_every_theft_ranks_above_the_first_honest_customer(ranked):
    run, rows = ranked
    kinds = [run.meters[r["meter"]].kind for r in rows]
    thefts = [t.meter for t in run.customers() if t.theft]
    assert len(thefts) == 12
    first_honest = next(i for i, r in enumerate(rows) if not run.meters[r["meter"]].theft)
    assert {r["meter"] for r in rows[:first_honest]} == set(thefts), kinds


def test_no_pv_vacant_or_disconnected_customer_in_the_top_ten(ranked):
    run, rows = ranked
    assert not [r["meter"] for r in rows[:10] if run.meters[r["meter"]].kind in CONTEXT]
    evidence = {r["meter"]: {e["kind"] for e in r["evidence"]} for r in rows}
    for t in run.customers():
        if t.kind == "disconnected":  # relay open: a supply state, not a stopped meter
            assert "stopped" not in evidence.get(t.meter, set())
        if t.kind == "pv":  # export is generation
            assert "reverse_energy" not in evidence.get(t.meter, set())


def test_each_theft_is_found_by_its_own_signal(ranked):
    run, rows = ranked
    evidence = {r["meter"]: {e["kind"] for e in r["evidence"]} for r in rows}
    expect = {"bypass": {"loss_follows_load"}, "neutral_bypass": {"neutral_imbalance"},
              "relay_bypass": {"energy_while_open"},
              # the cover event may be older than the window: the slowed meter still shows
              "cover_open": {"meter_cover_open", "loss_follows_load"}}  # fmt: skip
    for t in run.customers():
        if t.theft:
            assert expect[t.kind] & evidence[t.meter], (t, evidence[t.meter])
    share = {r["meter"]: e["details"]["unregistered_share"] for r in rows for e in r["evidence"]
             if e["kind"] == "loss_follows_load"}  # fmt: skip
    for t in run.customers():
        if t.kind == "bypass":  # the fit estimates the stolen share
            assert abs(float(share[t.meter]) - t.fraction) < 0.15, (t, share[t.meter])


def test_a_seasonal_home_is_damped_by_its_own_history():
    from decimal import Decimal as D

    from headend.analytics.suspects import MeterDays, rank_suspects

    days = [date(2026, 3, 1) + timedelta(days=i) for i in range(10)]
    used = {d: (D("0.2") if i >= 6 else D(8)) for i, d in enumerate(days)}
    before = {
        date(2026, 2, 1) + timedelta(days=i): (D("0.1") if i < 5 else D(8)) for i in range(20)
    }
    supply = dict.fromkeys(days, D(500))
    fresh = rank_suspects([MeterDays("m", "m", used)], {}, supply)[0].evidence[0]
    seasonal = rank_suspects([MeterDays("m", "m", used, history=before)], {}, supply)[0].evidence[0]
    assert fresh.kind == seasonal.kind == "stopped"
    assert seasonal.weight == fresh.weight / 4 and seasonal.details["seasonal"] is True
    opened = frozenset(days[6:])
    assert rank_suspects([MeterDays("m", "m", used, relay_open=opened)], {}, supply) == []


def test_a_silent_meter_does_not_void_the_loss_curve_fit():
    from headend.analytics.intervals import MeterIntervals, interval_evidence

    run = simulate(GridConfig(areas=1, customers=40, days=2, step_minutes=30, seed=4,
                              mix={"bypass": 0.1}))  # fmt: skip
    step = timedelta(minutes=30)

    def intervals(meter):
        s = run.series[meter]
        return MeterIntervals(meter, {t: v for t, v in zip(run.times, s.import_kwh, strict=True)})

    ivs = {t.meter: intervals(t.meter) for t in run.customers()}
    silent = next(t.meter for t in run.customers() if not t.theft)
    ivs[silent] = MeterIntervals(silent)  # no interval reading at all
    ivs["A1-T"] = intervals("A1-T")
    ids = [t.meter for t in run.customers()]
    found = interval_evidence(ivs, {}, ids, ["A1-T"], step, run.times[-1])
    thieves = {t.meter for t in run.customers() if t.theft}
    assert thieves <= {
        m for m, ev in found.items() if any(e.kind == "loss_follows_load" for e in ev)
    }


def test_last_seasons_gap_in_the_meters_own_history_damps_stopped(sqlite_engine):
    """Two homes stop using energy now; one was away as long last spring and came back."""
    from decimal import Decimal as D

    from sqlalchemy import insert

    from headend.analytics.model import boundary
    from headend.db import writing
    from headend.db.tables import areas, gateways, meters, readings

    zone = AnalyticsSettings().tz
    since = datetime(2025, 1, 1, tzinfo=UTC)
    last = date(2026, 3, 14)
    first = last - timedelta(days=330)
    usage = {"T": lambda i: D(60), "d": lambda i: D(8) if i < 325 else D(0)}
    usage["c"] = lambda i: D(0) if 30 <= i < 40 or i >= 325 else D(8)  # away 10 days then, now
    with writing(sqlite_engine) as conn:
        conn.execute(insert(gateways).values(id="gw", valid_from=since))
        conn.execute(insert(areas).values(id="A", gateway="gw", valid_from=since))
        base = {"area": "A", "bus": "b", "protocol": "dlt645-2007", "valid_from": since}
        for n, (m, role) in enumerate((("T", "area_total"), ("c", "customer"), ("d", "customer"))):
            conn.execute(
                insert(meters).values(id=m, point=m, address=f"{n:012d}", role=role, **base)
            )
        rows = []
        for m, use in usage.items():
            value = D(1000)
            for i in range(332):
                at = boundary(first + timedelta(days=i), zone)
                rows.append({"meter": m, "quantity": "energy.active.import.total", "time": at,
                             "kind": "daily_frozen", "value": str(value), "gateway": "gw",
                             "gateway_time": at, "freeze_time": at, "flags": ""})  # fmt: skip
                value += use(i)
        conn.execute(insert(readings), rows)
    recompute(sqlite_engine, AnalyticsSettings(), last, last, datetime(2026, 3, 20, tzinfo=UTC))
    with reading(sqlite_engine) as conn:
        _, rows = store.suspect_rows(conn, "A", last)
    stopped = {r["meter"]: e for r in rows for e in r["evidence"] if e["kind"] == "stopped"}
    assert stopped["d"]["weight"] == "40.00" and stopped["d"]["details"]["seasonal"] is False
    assert stopped["c"]["weight"] == "10.00" and stopped["c"]["details"]["seasonal"] is True
    assert rows[0]["meter"] == "d"


def test_interval_evidence_through_either_database(engine):
    """Relay states, low voltages and neutral currents read back on SQLite and PostgreSQL."""
    mix = {"relay_bypass": 0.1, "disconnected": 0.1, "neutral_bypass": 0.1}
    run = simulate(GridConfig(areas=1, customers=20, days=2, step_minutes=60, mix=mix, seed=6))
    store_archive(engine, run)
    store_readings(engine, run, interval_every=1)
    from sqlalchemy import update

    from headend.db import writing
    from headend.db.tables import readings

    slowed = next(t.meter for t in run.customers() if t.kind == "healthy")
    loaded = [run.times[i + 1] for i, a in enumerate(run.series[slowed].current_live) if a > 1][:4]
    with writing(engine) as conn:  # its voltage circuit opened while current flows (失压)
        conn.execute(
            update(readings)
            .where(readings.c.meter == slowed, readings.c.quantity == "voltage.a",
                   readings.c.time.in_(loaded))
            .values(value="96.5")
        )  # fmt: skip
    last = run.config.start + timedelta(days=1)
    settings = AnalyticsSettings(interval_minutes=60, suspect_days=3, profile_days=2)
    recompute(engine, settings, last, last, datetime(2026, 3, 9, tzinfo=UTC))
    with reading(engine) as conn:
        _, rows = store.suspect_rows(conn, "A1", last)
    evidence = {r["meter"]: {e["kind"] for e in r["evidence"]} for r in rows}
    for t in run.customers():
        got = evidence.get(t.meter, set())
        if t.kind == "relay_bypass":
            assert "energy_while_open" in got
        if t.kind == "neutral_bypass":
            assert "neutral_imbalance" in got
        if t.kind == "disconnected":
            assert not got
    assert "lost_voltage" in evidence[slowed]


def test_a_disconnection_older_than_the_interval_profile_is_still_a_supply_state(sqlite_engine):
    """c was disconnected for arrears 8 days ago (relay reported open since); the suspects read
    3 days of interval data but the relay states of the whole 14-day window."""
    from decimal import Decimal as D

    from sqlalchemy import insert

    from headend.analytics.model import boundary
    from headend.db import writing
    from headend.db.tables import areas, gateways, meters, readings

    zone = AnalyticsSettings().tz
    since = datetime(2025, 1, 1, tzinfo=UTC)
    last = date(2026, 3, 14)
    first = last - timedelta(days=20)
    cut = 12  # day index of the disconnection
    with writing(sqlite_engine) as conn:
        conn.execute(insert(gateways).values(id="gw", valid_from=since))
        conn.execute(insert(areas).values(id="A", gateway="gw", valid_from=since))
        base = {"area": "A", "bus": "b", "protocol": "dlt645-2007", "valid_from": since}
        parts = (("T", "area_total"), ("c", "customer"), ("e", "customer"))
        for n, (m, role) in enumerate(parts):
            conn.execute(
                insert(meters).values(id=m, point=m, address=f"{n:012d}", role=role, **base)
            )
        rows = []
        value = {"T": D(1000), "c": D(1000), "e": D(1000)}
        for i in range(22):
            at = boundary(first + timedelta(days=i), zone)
            for m in ("T", "c", "e"):
                rows.append({"meter": m, "quantity": "energy.active.import.total", "time": at,
                             "kind": "daily_frozen", "value": str(value[m]), "gateway": "gw",
                             "gateway_time": at, "freeze_time": at, "flags": ""})  # fmt: skip
            used = D(8) if i < cut else D(0)  # the area meter sees the disconnection too
            value["c"] += used
            value["e"] += D(10)
            value["T"] += (used + D(10)) * D("1.05")
            for h in range(0, 24, 4):
                state = "open" if i >= cut else "closed"
                rows.append({"meter": "c", "quantity": "relay.state", "time": at + timedelta(hours=h),
                             "kind": "interval", "value": state, "gateway": "gw",
                             "gateway_time": at, "freeze_time": None, "flags": ""})  # fmt: skip
        conn.execute(insert(readings), rows)
    settings = AnalyticsSettings(profile_days=3)
    recompute(sqlite_engine, settings, last, last, datetime(2026, 3, 20, tzinfo=UTC))
    with reading(sqlite_engine) as conn:
        _, found = store.suspect_rows(conn, "A", last)
    assert found == [], [r["evidence"] for r in found]


def test_neutral_counts_in_the_database_match_the_readings(engine):
    """The live/neutral aggregate of SQLite and PostgreSQL gives the counts of the pure rule."""
    from headend.analytics import series
    from headend.analytics.intervals import NeutralCounts, neutral_counts

    mix = {"neutral_bypass": 0.2, "disconnected": 0.1}
    run = simulate(GridConfig(areas=1, customers=20, days=1, step_minutes=60, mix=mix, seed=9))
    store_archive(engine, run)
    store_readings(engine, run, interval_every=1, quantities=("current.a", "current.n"))
    ids = [t.meter for t in run.customers()]
    step = timedelta(minutes=60)
    with reading(engine) as conn:
        got = series.neutral_counts(conn, ids, run.times[0], run.times[-1] + step)
    for t in run.customers():
        s = run.series[t.meter]
        times = run.times[1:]
        pure = neutral_counts(MeterIntervals(t.meter, live=dict(zip(times, s.current_live, strict=True)),
                              neutral=dict(zip(times, s.current_neutral, strict=True))))  # fmt: skip
        mine = got.get(t.meter, NeutralCounts(0))  # no loaded reading: not listed
        assert (mine.loaded, mine.off, mine.first_off) == (pure.loaded, pure.off, pure.first_off)
        assert (
            abs(mine.live_off - pure.live_off) < 1e-6
            and abs(mine.neutral_off - pure.neutral_off) < 1e-6
        )
        assert (mine.off > 0) == (t.kind == "neutral_bypass"), t
