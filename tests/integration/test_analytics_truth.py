"""Analytics against simulator truth, readings generated from the simulator model's registers.

The fleet runs on a manual clock (no buses opened): daily frozen values are the model's
registered values at each local midnight rounded to 0.01 kWh as the DL/T 645 wire carries them,
cover events are the model's cover records.  These rows go into a migrated SQLite head-end and
the analytics recompute from there.  (The full path over the gateway and mosquitto is
``test_analytics_fullpath``.)
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from headend.analytics.service import recompute
from headend.analytics.settings import AnalyticsSettings
from headend.config import DatabaseSettings
from headend.db import make_engine, reading
from headend.db.analytics_tables import analytics_lineloss, analytics_quality, analytics_suspects
from headend.db.migrate import upgrade
from simulators.fleet import Fleet
from taiqu.clock import ManualClock
from tests.integration.analytics_support import (
    LOSS,
    Z,
    cover_events,
    dec,
    fleet_doc,
    frozen_rows,
    seed_archive,
    store,
    store_events,
    truth_rate,
)

pytestmark = pytest.mark.integration
START = datetime(2026, 3, 1, tzinfo=Z)
DAY0 = START.date()
DAYS = 8
PP = 0.005  # half a percentage point


@pytest.fixture
def engine(tmp_path: Path):
    e = make_engine(
        DatabaseSettings(url=f"sqlite:///{tmp_path / 'h.db'}", sqlite_synchronous="NORMAL")
    )
    upgrade(e)
    yield e
    e.dispose()


def run(engine, scenarios, skip=None, replaced=None, customers=8):
    fleet = Fleet(fleet_doc(scenarios, customers), ManualClock(START))
    fleet.clock.current = START + timedelta(days=DAYS + 1)  # type: ignore[attr-defined]
    seed_archive(engine, fleet, replaced)
    store(engine, frozen_rows(fleet, DAY0, DAY0 + timedelta(days=DAYS), skip))
    store_events(engine, cover_events(fleet, fleet.clock.now()))
    last = DAY0 + timedelta(days=DAYS - 1)
    recompute(engine, AnalyticsSettings(), DAY0, last, fleet.clock.now())
    return fleet, last


def daily(engine) -> dict[date, object]:
    with reading(engine) as conn:
        rows = conn.execute(select(analytics_lineloss).where(analytics_lineloss.c.period == "day"))
        return {date.fromisoformat(r.start): r for r in rows}


def suspects(engine) -> list:
    with reading(engine) as conn:
        return list(conn.execute(select(analytics_suspects).order_by(analytics_suspects.c.rank)))


def test_healthy_area_loss_is_the_technical_loss(engine):
    fleet, _ = run(engine, {})
    rows = daily(engine)
    assert len(rows) == DAYS
    for day, r in rows.items():
        truth, t = truth_rate(fleet, day)
        tech = t["technical_loss_kwh"] / t["supply_kwh"]
        assert abs(float(r.rate) - tech) < PP and abs(float(r.rate) - truth) < PP
        assert r.coverage == "1.0000" and r.method == "daily_frozen" and r.flags == ""
    assert abs(tech - LOSS / (1 + LOSS)) < 1e-9
    assert suspects(engine) == []


def test_bypass_mid_run_raises_loss_by_the_bypassed_energy_and_ranks_first(engine):
    thief = "202611240003"
    at = (START + timedelta(days=4, hours=12)).isoformat()
    fleet, _ = run(engine, {thief: [{"kind": "bypass", "at": at, "fraction": 0.5}]})
    rows = daily(engine)
    for day, r in rows.items():
        truth, t = truth_rate(fleet, day)
        assert abs(float(r.rate) - truth) < PP, day
        t0, t1 = (day + timedelta(days=k) for k in (0, 1))
        m = fleet.control.truth_meter(
            thief, *(datetime.combine(x, datetime.min.time(), Z).isoformat() for x in (t0, t1))
        )
        bypassed = m["true_kwh"] - m["registered_import_kwh"]
        # the loss above the technical loss is the bypassed energy (to 0.5 pp of the supply)
        excess = float(r.loss) - t["technical_loss_kwh"]
        assert abs(excess - bypassed) / t["supply_kwh"] < PP, day
        if day >= DAY0 + timedelta(days=5):
            assert bypassed > 1.0 and float(r.rate) > LOSS / (1 + LOSS) + 0.02
    ranked = suspects(engine)
    assert ranked[0].meter == thief
    assert '"consumption_drop"' in ranked[0].evidence


def test_cover_open_ranks_that_meter_first_with_the_event(engine):
    meter = "202611240005"
    at = (START + timedelta(days=5, hours=3)).isoformat()
    run(engine, {meter: [{"kind": "meter_cover_open", "at": at, "duration_s": 600}]})
    ranked = suspects(engine)
    assert ranked and ranked[0].meter == meter
    assert '"kind": "meter_cover_open"' in ranked[0].evidence


def test_silent_meter_lowers_coverage_and_is_failing_not_loss(engine):
    silent = "202611240002"
    fleet, _ = run(engine, {}, skip={silent: DAY0 + timedelta(days=4)})
    rows = daily(engine)
    for day, r in rows.items():
        if day < DAY0 + timedelta(days=3):
            truth, _ = truth_rate(fleet, day)
            assert abs(float(r.rate) - truth) < PP
        else:
            assert r.loss is None and r.rate is None and dec(r.coverage) < 1
            assert "incomplete" in r.flags and silent in r.detail
    with reading(engine) as conn:
        found = conn.execute(select(analytics_quality.c.meter, analytics_quality.c.kind)).all()
    assert (silent, "failing") in found
    assert all(s.meter != silent or '"stopped"' not in s.evidence for s in suspects(engine))


def test_replacement_creates_neither_backwards_flag_nor_fake_loss(engine):
    old, new = "202611240004", "202611240099"
    at = START + timedelta(days=3, hours=15)
    scen = {
        old: [{"kind": "replace", "at": at.isoformat(), "new_address": new, "start_reading": 2.5}]
    }
    fleet, _ = run(engine, scen, replaced={old: (new, at, 2.5)})
    rows = daily(engine)
    for day, r in rows.items():
        truth, t = truth_rate(fleet, day)
        assert r.rate is not None and abs(float(r.rate) - truth) < PP, day
        assert abs(float(r.rate) - t["technical_loss_kwh"] / t["supply_kwh"]) < PP, day
    assert "replacement" in rows[DAY0 + timedelta(days=3)].flags
    with reading(engine) as conn:
        kinds = conn.execute(select(analytics_quality.c.meter, analytics_quality.c.kind)).all()
    assert not [k for k in kinds if k.kind in ("backwards", "jump", "failing")], kinds
    assert suspects(engine) == []
