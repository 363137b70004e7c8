"""Area membership (户变关系) from interval voltages: the check on simulated truth, and the API."""

from __future__ import annotations

from datetime import timedelta

import pytest

from headend.analytics import repo
from headend.analytics.membership import check
from headend.db import reading
from simulators.grid import GridConfig, simulate
from tests.headend.analytics.grid_db import store_archive, store_readings
from tests.headend.ops_support import cheap_hashes_fixture, ops_fixture  # noqa: F401

FLEET = GridConfig(areas=3, customers=60, days=3, mis_mapped=0.04, seed=5, mix={"pv": 0.1})


def voltages(run, every: int = 1):
    return {m: {run.times[i]: s.voltage[i - 1] for i in range(every, len(run.times), every)}
            for m, s in run.series.items()}  # fmt: skip


@pytest.fixture(scope="module")
def fleet():
    return simulate(FLEET)


def test_mis_mapped_meters_are_flagged_and_correct_ones_are_not(fleet):
    areas = {m: t.mapped_area for m, t in fleet.meters.items()}
    found = check(voltages(fleet), areas, timedelta(minutes=15))
    wrong = {t.meter: t.area for t in fleet.meters.values() if t.mis_mapped}
    assert len(wrong) == 7
    flagged = {m.meter: m for m in found if m.flagged}
    assert set(flagged) == set(wrong)
    for meter, m in flagged.items():  # the evidence names where it really is
        assert m.best == wrong[meter] and m.correlations[m.best] > m.own + 0.05
        assert m.intervals >= 3 * 96 - 2 and round(m.days) == 3


def test_hourly_voltages_still_separate_areas(fleet):
    areas = {m: t.mapped_area for m, t in fleet.meters.items()}
    found = check(voltages(fleet, every=4), areas, timedelta(hours=1))
    wrong = {t.meter for t in fleet.meters.values() if t.mis_mapped}
    flagged = {m.meter for m in found if m.flagged}
    assert len(flagged & wrong) >= len(wrong) - 1 and len(flagged - wrong) <= 1


def test_too_few_intervals_flag_nothing():
    run = simulate(GridConfig(areas=2, customers=10, days=1, step_minutes=240, mis_mapped=0.1))
    areas = {m: t.mapped_area for m, t in run.meters.items()}
    assert not [m for m in check(voltages(run), areas, timedelta(hours=4)) if m.flagged]


def test_api_flags_with_evidence_and_an_operator_moves_the_meter(ops):
    run = simulate(FLEET)
    store_archive(ops.engine, run, prefix="G")
    store_readings(ops.engine, run, interval_every=1, prefix="G", quantities=("voltage.a",))
    params = {"areas": ["GA1", "GA2", "GA3"], "from": "2026-03-01", "to": "2026-03-03"}
    r = ops.client.get("/api/v1/analytics/membership", params=params, headers=ops.as_("vic"))
    assert r.status_code == 200, r.text
    body = r.json()
    wrong = {t.meter: f"G{t.area}" for t in run.meters.values() if t.mis_mapped}
    assert body["meters"] == 183 and body["flagged"] == len(wrong)
    first = body["results"][0]
    assert first["best_area"] == wrong[first["meter"]] and first["flagged"]
    assert set(first["correlations"]) == {"GA1", "GA2", "GA3"}
    move = {"meter": first["meter"], "area": first["best_area"], "evidence": first}
    denied = ops.client.post(
        "/api/v1/analytics/membership/confirm", json=move, headers=ops.as_("olga")
    )
    assert denied.status_code == 403
    scoped = ops.client.post(
        "/api/v1/analytics/membership/confirm", json=move, headers=ops.as_("sid")
    )
    assert scoped.status_code == 403  # a supervisor of area A2 only
    done = ops.client.post(
        "/api/v1/analytics/membership/confirm", json=move, headers=ops.as_("sam")
    )
    assert done.status_code == 200, done.text
    with reading(ops.engine) as conn:
        assert repo.meter_area(conn, first["meter"])[0] == first["best_area"]
    again = ops.client.post(
        "/api/v1/analytics/membership/confirm", json=move, headers=ops.as_("sam")
    )
    assert again.status_code == 400  # already there
    one = ops.client.get("/api/v1/analytics/membership", params={"areas": ["GA1"]},
                         headers=ops.as_("vic"))  # fmt: skip
    assert one.status_code == 400
    unknown = ops.client.get("/api/v1/analytics/membership", params={"areas": ["GA1", "nope"]},
                             headers=ops.as_("vic"))  # fmt: skip
    assert unknown.status_code == 400
