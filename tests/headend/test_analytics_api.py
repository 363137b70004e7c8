"""Analytics on SQLite and PostgreSQL: recompute from stored readings, the API, CSV, scoping, job."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal as D

import pytest
from sqlalchemy import func, insert, select

from headend.analytics.job import claim, run_day
from headend.analytics.model import boundary
from headend.analytics.settings import AnalyticsSettings
from headend.db import writing
from headend.db.analytics_tables import analytics_lineloss, analytics_runs
from headend.db.tables import events, gateway_sessions, meters, readings
from tests.headend.ops_support import (  # noqa: F401
    SHANGHAI,
    SINCE,
    cheap_hashes_fixture,
    meter_id,
    ops_fixture,
)

DAY0 = date(2026, 3, 1)
N_DAYS = 6
SILENT_FROM = 3  # A2-m04 stops answering from this day index on
QTY = "energy.active.import.total"


def load(i: int) -> D:
    return D(10 + i)  # kWh a day for A2-m0i


def seed(engine) -> None:
    """Area A2: 5 customers + total meter (multiplier 10, 5 % loss); m04 silent from day 3."""
    rows = []
    with writing(engine) as conn:
        conn.execute(
            insert(meters).values(
                id="A2-T", point="P-A2-T", area="A2", bus="bus1", protocol="dlt645-2007",
                address="000000009999", role="area_total", multiplier="10", valid_from=SINCE,
            )
        )  # fmt: skip
        for k in range(N_DAYS + 1):
            day = DAY0 + timedelta(days=k)
            t = boundary(day, SHANGHAI)
            total = D(0)
            for i in range(5):
                value = 100 + load(i) * k
                total += load(i) * k
                if i == 4 and k >= SILENT_FROM:
                    continue
                late = timedelta(minutes=6) if k != 2 else timedelta(days=1, hours=3)
                rows.append((meter_id("A2", i), t, value, t + late, "backfilled" if k == 2 else ""))
            rows.append(("A2-T", t, D(50) + total * D("1.05") / 10, t + timedelta(minutes=5), ""))
        conn.execute(
            insert(readings),
            [
                {
                    "meter": m, "quantity": QTY, "time": t, "kind": "daily_frozen",
                    "value": str(v), "gateway": "gw2", "gateway_time": gt, "freeze_time": t,
                    "flags": f,
                }
                for m, t, v, gt, f in rows
            ],
        )  # fmt: skip
        conn.execute(
            insert(events).values(
                key="cover-1", gateway="gw2", meter=meter_id("A2", 2), type="meter_cover_open",
                time=boundary(DAY0 + timedelta(days=4), SHANGHAI) + timedelta(hours=3),
                details="{}", received=SINCE,
            )
        )  # fmt: skip
        conn.execute(
            insert(gateway_sessions),
            [
                {"gateway": "gw2", "state": s, "at": boundary(DAY0, SHANGHAI) + timedelta(hours=h),
                 "received": SINCE}
                for s, h in (("online", -30), ("offline", 30), ("online", 36))
            ],
        )  # fmt: skip


@pytest.fixture
def api(ops):
    seed(ops.engine)
    r = ops.client.post(
        "/api/v1/analytics/recompute",
        json={"from": DAY0.isoformat(), "to": (DAY0 + timedelta(days=N_DAYS - 1)).isoformat()},
        headers=ops.as_("olga"),
    )
    assert r.status_code == 200, r.text
    assert "A2" in r.json()["areas"]
    return ops


def get(ops, path: str, who: str = "vic", **params):
    return ops.client.get(f"/api/v1/analytics{path}", params=params, headers=ops.as_(who))


RANGE = {"from": DAY0.isoformat(), "to": (DAY0 + timedelta(days=N_DAYS - 1)).isoformat()}


def test_daily_loss_with_multiplier_and_a_silent_meter(api):
    rows = get(api, "/lineloss", area="A2", **RANGE).json()
    assert [r["start"] for r in rows] == [
        (DAY0 + timedelta(days=k)).isoformat() for k in range(N_DAYS)
    ]
    sales = sum(load(i) for i in range(5))  # 60 kWh a day
    for k, r in enumerate(rows):
        if k < SILENT_FROM - 1:
            assert D(r["supply"]) == sales * D("1.05") and D(r["sales"]) == sales
            assert D(r["loss"]) == D(r["supply"]) - D(r["sales"]) and D(r["rate"]) == D("0.0476")
            assert r["coverage"] == "1.0000" and r["method"] == "daily_frozen"
        else:  # the silent meter: lower coverage, no loss invented
            assert r["loss"] is None and r["rate"] is None and "incomplete" in r["flags"]
            assert D(r["coverage"]) == D("0.8333")
    month = get(api, "/lineloss", area="A2", period="month", **RANGE).json()
    assert len(month) == 1 and month[0]["loss"] is None  # m04 has no freeze at the period's end


def test_collection_success_and_backfill(api):
    rows = {r["day"]: r for r in get(api, "/collection", scope="area", key="A2", **RANGE).json()}
    assert rows[DAY0.isoformat()]["rate_obtained"] == "1.0000"
    backfilled = rows[(DAY0 + timedelta(days=2)).isoformat()]
    assert (backfilled["due"], backfilled["collected"], backfilled["obtained"]) == (6, 1, 6)
    silent = rows[(DAY0 + timedelta(days=4)).isoformat()]
    assert silent["obtained"] == 5 and silent["missing"] == [meter_id("A2", 4)]
    gw = {r["day"]: r for r in get(api, "/collection", scope="gateway", key="gw2", **RANGE).json()}
    assert gw[DAY0.isoformat()]["online_rate"] == "1.0000"
    assert gw[(DAY0 + timedelta(days=1)).isoformat()]["online_rate"] == "0.7500"
    quality = get(api, "/areas/A2/quality").json()
    failing = [f for f in quality["findings"] if f["kind"] == "failing"]
    assert [f["meter"] for f in failing] == [meter_id("A2", 4)]


def test_suspects_inspections_and_csv(api):
    body = get(api, "/areas/A2/suspects").json()
    assert body["suspects"][0]["meter"] == meter_id("A2", 2)
    assert body["suspects"][0]["evidence"][0]["kind"] == "meter_cover_open"
    m = meter_id("A2", 2)
    r = api.client.post(
        f"/api/v1/analytics/meters/{m}/inspections",
        json={"outcome": "no_fault"},
        headers=api.as_("vic"),
    )
    assert r.status_code == 403
    r = api.client.post(
        f"/api/v1/analytics/meters/{m}/inspections",
        json={"outcome": "no_fault", "note": "seal intact"},
        headers=api.as_("ola"),
    )
    assert r.status_code == 201, r.text
    r = api.client.post(
        f"/api/v1/analytics/meters/{m}/inspections", json={"outcome": "??"}, headers=api.as_("ola")
    )
    assert r.status_code == 422
    listed = get(api, f"/meters/{m}/inspections").json()
    assert [i["outcome"] for i in listed] == ["no_fault"]
    again = get(api, "/areas/A2/suspects").json()["suspects"][0]
    assert again["inspection"]["outcome"] == "no_fault"
    text = get(api, "/areas/A2/suspects", format="csv").text
    parsed = list(csv.DictReader(io.StringIO(text)))
    assert parsed[0]["meter"] == m and "cover" in parsed[0]["evidence"]
    loss_csv = list(
        csv.DictReader(io.StringIO(get(api, "/lineloss", area="A2", format="csv", **RANGE).text))
    )
    assert len(loss_csv) == N_DAYS and loss_csv[0]["rate"] == "0.0476"


def test_area_scope_roles_and_targets(api):
    assert get(api, "/lineloss", who="vera", area="A1", **RANGE).status_code == 403
    seen = {r["area"] for r in get(api, "/lineloss", who="vera", **RANGE).json()}
    assert seen == {"A2"}
    assert get(api, "/areas/A1/suspects", who="vera").status_code == 403
    assert (
        get(api, "/collection", who="vera", scope="gateway", key="gw1", **RANGE).status_code == 403
    )
    assert api.client.get("/api/v1/analytics/lineloss").status_code == 401
    r = api.client.put(
        "/api/v1/analytics/areas/A2/target", json={"target": "0.04"}, headers=api.as_("olga")
    )
    assert r.status_code == 403
    r = api.client.put(
        "/api/v1/analytics/areas/A2/target", json={"target": "0.04"}, headers=api.as_("sid")
    )
    assert r.status_code == 200, r.text
    assert get(api, "/areas/A2/target").json()["target"] == "0.04"
    r = api.client.post(
        "/api/v1/analytics/recompute", json={**RANGE, "areas": ["A1"]}, headers=api.as_("ola")
    )
    assert r.status_code == 403
    r = api.client.post("/api/v1/analytics/recompute", json=RANGE, headers=api.as_("ola"))
    assert r.json()["areas"] == ["A2"]
    first = get(api, "/lineloss", area="A2", **RANGE).json()[0]
    assert "high_loss" in first["flags"] and first["target"] == "0.04"
    trend = get(api, "/areas/A2/trend", **RANGE).json()
    assert trend["days"][0]["rate"] == "0.0476" and trend["days"][-1]["rate"] is None
    bad = get(api, "/lineloss", **{"from": "2026-03-05", "to": "2026-03-01"})
    assert bad.status_code == 400 and "before" in bad.text


def test_job_claims_once_and_recompute_is_idempotent(api):
    settings = AnalyticsSettings()
    engine = api.engine
    with engine.connect() as conn:
        before = conn.execute(select(func.count()).select_from(analytics_lineloss)).scalar_one()
    today = DAY0 + timedelta(days=N_DAYS)
    now = boundary(today, SHANGHAI) + timedelta(hours=2)
    assert run_day(engine, settings, today, now, "head-end-1") is not None
    assert run_day(engine, settings, today, now, "head-end-2") is None  # the other instance
    assert not claim(engine, today, "head-end-2", now + timedelta(hours=3))  # finished: kept
    with engine.connect() as conn:
        after = conn.execute(select(func.count()).select_from(analytics_lineloss)).scalar_one()
        runs = conn.execute(select(analytics_runs)).all()
    assert after == before and len(runs) == 1 and runs[0].claimed_by == "head-end-1"


async def _until(condition, what: str, seconds: float = 30) -> None:
    import asyncio
    import time as _time

    deadline = _time.monotonic() + seconds
    while not condition():
        assert _time.monotonic() < deadline, what
        await asyncio.sleep(0.01)


async def test_daily_job_on_a_manual_clock_runs_only_when_the_clock_moves(engine):
    import asyncio

    from headend.analytics import job as daily_job
    from taiqu.clock import ManualClock

    start = boundary(DAY0, SHANGHAI) + timedelta(hours=9)  # 09:00: today's 01:30 has passed
    clock = ManualClock(start)
    job = daily_job.DailyJob(engine, AnalyticsSettings(start_delay_s=5), clock)
    job.start()
    await asyncio.sleep(10 * daily_job.POLL_S)  # the start delay is clock time: nothing yet
    assert job.runs == 0 and clock.now() == start
    clock.advance(5)
    await _until(lambda: job.runs == 1, "no catch-up run after the start delay")
    await asyncio.sleep(10 * daily_job.POLL_S)  # a job that moved the clock would spin days
    assert job.runs == 1 and clock.now() == start + timedelta(seconds=5)
    for k in (1, 2):
        clock.current = boundary(DAY0 + timedelta(days=k), SHANGHAI) + timedelta(
            hours=1, minutes=31
        )
        await _until(lambda k=k: job.runs == 1 + k, f"no run on day {k}")
    await job.stop()
    with engine.connect() as conn:
        days = sorted(r.day for r in conn.execute(select(analytics_runs.c.day)))
    # the catch-up of the start day, then one run per following day at 01:30
    assert days == [(DAY0 + timedelta(days=k)).isoformat() for k in range(3)]
    assert job.next_run(start).astimezone(SHANGHAI).hour == 1


async def test_daily_job_on_an_accelerated_clock_computes_the_day_just_ended(ops):
    from headend.analytics.job import DailyJob
    from taiqu.clock import AcceleratedClock

    seed(ops.engine)
    today = DAY0 + timedelta(days=N_DAYS)
    run_at = boundary(today, SHANGHAI) + timedelta(hours=1, minutes=30)
    # 01:28 local now; 2 simulated minutes take 0.1 s
    clock = AcceleratedClock(run_at - timedelta(minutes=2), 1200, datetime.now(UTC))
    job = DailyJob(ops.engine, AnalyticsSettings(start_delay_s=0), clock)
    job.start()
    await _until(lambda: job.runs == 1, "the job did not run at the simulated 01:30")
    await job.stop()
    yesterday = today - timedelta(days=1)
    with ops.engine.connect() as conn:
        [run] = conn.execute(select(analytics_runs)).all()
        rows = conn.execute(
            select(analytics_lineloss).where(analytics_lineloss.c.period == "day")
        ).all()
    assert run.day == today.isoformat() and run.claimed_at >= run_at
    assert max(r.start for r in rows) == yesterday.isoformat()  # the day just ended, local
    assert (yesterday - timedelta(days=3)).isoformat() in {r.start for r in rows}  # look-back


def test_the_router_alone_starts_no_job(ops):
    assert getattr(ops.client.app.state, "analytics_job", None) is None
    assert ops.clock.now() == ops.clock.current  # not fast-forwarded by a job


async def test_the_job_starts_on_the_apps_clock_with_workers(engine):
    from types import SimpleNamespace

    from headend.analytics import job as daily_job
    from taiqu.clock import ManualClock

    clock = ManualClock(boundary(DAY0, SHANGHAI))
    app = SimpleNamespace(state=SimpleNamespace(engine=engine, clock=clock, dispatcher=None))
    assert daily_job.start(app, AnalyticsSettings()) is None  # no workers: no job
    app.state.dispatcher = object()
    assert daily_job.start(app, AnalyticsSettings(job=False)) is None
    job = daily_job.start(app, AnalyticsSettings())
    assert job is not None and job.clock is clock and job.task is not None
    assert daily_job.start(app, AnalyticsSettings()) is job  # once per app
    await job.stop()
