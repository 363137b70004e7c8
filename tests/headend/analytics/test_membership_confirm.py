"""Confirming a membership move (户变关系) through the API: a stale suggestion is refused, a
back-dated move recomputes the days it changes, audited with the evidence (both backends)."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy import select

from headend.analytics import repo, store
from headend.analytics.service import recompute
from headend.analytics.settings import AnalyticsSettings
from headend.archive.effective import history
from headend.db import reading
from headend.db.ops_tables import audit_log
from headend.db.tables import meters
from tests.headend.ops_support import SHANGHAI, cheap_hashes_fixture, ops_fixture  # noqa: F401

URL = "/api/v1/analytics/membership/confirm"


def archive_history(conn, meter: str):
    return history(conn, meters, meter)


YESTERDAY = date(2026, 3, 9)  # the ops clock is 2026-03-10 10:00 in Shanghai


def test_a_stale_suggestion_is_refused_and_the_archive_unchanged(ops):
    """The check said A1-m03 (in A1) belongs to B1; meanwhile someone moved it to A2.  The
    operator's confirm carries the evidence it saw (area A1): refused with 409, not moved."""
    first = ops.client.post(URL, json={"meter": "A1-m03", "area": "A2"}, headers=ops.as_("sam"))
    assert first.status_code == 200, first.text
    evidence = {"meter": "A1-m03", "area": "A1", "best_area": "B1", "flagged": True}
    stale = {"meter": "A1-m03", "area": "B1", "evidence": evidence}
    r = ops.client.post(URL, json=stale, headers=ops.as_("sam"))
    assert r.status_code == 409, r.text
    assert "A2" in r.json()["detail"]
    explicit = {"meter": "A1-m03", "area": "B1", "from": "A1"}
    assert ops.client.post(URL, json=explicit, headers=ops.as_("sam")).status_code == 409
    with reading(ops.engine) as conn:
        assert repo.meter_area(conn, "A1-m03")[0] == "A2"
        (moved,) = [v for v in archive_history(conn, "A1-m03") if v.area == "A2"]
    assert moved.valid_from == datetime(2026, 3, 10, tzinfo=SHANGHAI)  # 00:00 today: no split day
    # the first move took effect at 00:00 today (the default); this one from now on
    fresh = {"meter": "A1-m03", "area": "B1", "from": "A2", "at": "2026-03-10T02:00:00Z"}
    assert ops.client.post(URL, json=fresh, headers=ops.as_("sam")).status_code == 200


def test_a_back_dated_move_recomputes_both_areas_from_then(ops):
    settings = AnalyticsSettings()
    first = YESTERDAY - timedelta(days=4)
    recompute(ops.engine, settings, first, YESTERDAY, datetime(2026, 3, 10, tzinfo=SHANGHAI))

    def points(area: str) -> dict[str, int]:
        with reading(ops.engine) as conn:
            rows = store.loss_rows(conn, [area], "day", first, YESTERDAY)
        return {r["start"]: r["points_total"] for r in rows}

    assert set(points("A1").values()) == {15} and set(points("A2").values()) == {5}
    at = datetime(2026, 3, 7, tzinfo=SHANGHAI).isoformat()  # found on site: moved since the 7th
    body = {"meter": "A1-m03", "area": "A2", "at": at, "evidence": {"area": "A1"}}
    r = ops.client.post(URL, json=body, headers=ops.as_("sam"))
    assert r.status_code == 200, r.text
    assert r.json()["recomputed"] == {"from": "2026-03-07", "to": "2026-03-09",
                                      "areas": ["A1", "A2"]}  # fmt: skip
    before = {(first + timedelta(days=i)).isoformat() for i in range(2)}
    a1, a2 = points("A1"), points("A2")
    assert all(a1[d] == (15 if d in before else 14) for d in a1)
    assert all(a2[d] == (5 if d in before else 6) for d in a2)
    with reading(ops.engine) as conn:
        actions = [r.action for r in conn.execute(select(audit_log.c.action))]
    assert {"archive.meter_update", "analytics.membership_confirm"} <= set(actions)


def test_meters_the_check_cannot_score_are_named(ops):
    """Hourly voltages while ``interval_minutes`` is 15 have no adjacent pairs: nothing can be
    flagged, and the answer says which meters went unscored instead of an empty, clean list."""
    from simulators.grid import GridConfig, simulate
    from tests.headend.analytics.grid_db import store_archive, store_readings

    run = simulate(GridConfig(areas=2, customers=8, days=2, mis_mapped=0.2, seed=3))
    store_archive(ops.engine, run, prefix="H")
    store_readings(ops.engine, run, interval_every=4, prefix="H", quantities=("voltage.a",))
    params = {"areas": ["HA1", "HA2"], "from": "2026-03-01", "to": "2026-03-02"}
    body = ops.client.get("/api/v1/analytics/membership", params=params,
                          headers=ops.as_("vic")).json()  # fmt: skip
    assert body["flagged"] == 0 and body["interval_minutes"] == 15
    assert body["unscored"] == sorted(run.meters) and len(body["unscored"]) == 18
