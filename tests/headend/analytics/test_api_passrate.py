"""Loss bands and the pass rate (台区线损合格率) through the API, JSON and CSV, both backends."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

from tests.headend.ops_support import cheap_hashes_fixture, ops_fixture  # noqa: F401
from tests.headend.test_analytics_api import DAY0, RANGE, SILENT_FROM, api, get  # noqa: F401


def test_pass_rate_per_day_and_month_counts_unassessed_as_not_passed(api):  # noqa: F811
    days = get(api, "/passrate", **RANGE).json()
    assert [d["start"] for d in days][:2] == [
        DAY0.isoformat(),
        (DAY0 + timedelta(days=1)).isoformat(),
    ]
    first = days[0]
    # A2 at 4.76 % is inside the default band 0–8 %; A1 and B1 have no area total meter
    assert (first["areas"], first["assessed"], first["passed"]) == (3, 1, 1)
    assert first["pass_rate"] == "0.3333" and first["assessed_pass_rate"] == "1.0000"
    assert first["unassessed"] == ["A1", "B1"] and first["failing"] == []
    silent = days[SILENT_FROM - 1]  # A2 incomplete from here: no rate, not passed
    assert silent["passed"] == 0 and "A2" in silent["unassessed"]
    month = get(api, "/passrate", period="month", **RANGE).json()
    assert len(month) == 1 and month[0]["start"] == DAY0.isoformat()
    rows = list(
        csv.DictReader(io.StringIO(get(api, "/passrate", **{"format": "csv"}, **RANGE).text))
    )
    assert rows[0]["pass_rate"] == "0.3333" and rows[0]["unassessed"] == '["A1", "B1"]'


def test_band_low_and_high_set_per_area(api):  # noqa: F811
    put = api.client.put
    bad = put("/api/v1/analytics/areas/A2/target", json={"target": "0.04", "low": "0.05"},
              headers=api.as_("sid"))  # fmt: skip
    assert bad.status_code == 422
    r = put("/api/v1/analytics/areas/A2/target", json={"target": "0.10", "low": "0.05"},
            headers=api.as_("sid"))  # fmt: skip
    assert r.status_code == 200, r.text
    band = get(api, "/areas/A2/target").json()
    assert (band["low"], band["target"], band["default"]) == ("0.05", "0.10", False)
    assert get(api, "/areas/A1/target").json()["low"] == "0"
    r = api.client.post("/api/v1/analytics/recompute", json=RANGE, headers=api.as_("olga"))
    assert r.status_code == 200
    first = get(api, "/lineloss", area="A2", **RANGE).json()[0]
    assert "low_loss" in first["flags"]  # 4.76 % is below the band's 5 %
    day = get(api, "/passrate", **RANGE).json()[0]
    assert (day["passed"], day["low"], day["failing"]) == (0, 1, ["A2"])


BAD = [
    ("/passrate", {"from": "2026-13-01"}),
    ("/passrate", {"from": "2026-03-05", "to": "2026-03-01"}),
    ("/passrate", {"period": "week"}),
    ("/passrate", {"from": "0001-01-01"}),
    ("/passrate", {"from": "2000-01-01", "to": "2026-03-01"}),
    ("/passrate", {"format": "xlsx"}),
    ("/lineloss", {"from": "2026-02-30"}),
    ("/lineloss", {"to": "9999-12-31"}),
    ("/areas/A2/trend", {"window": "0"}),
    ("/areas/A2/trend", {"from": "x"}),
    ("/areas/nope/collection/quantities", {"day": "2026-03-02"}),
    ("/areas/A2/collection/quantities", {"day": "2026-03-32"}),
    ("/collection", {"scope": "meter"}),
    ("/membership", {"areas": ["A1", "nope"]}),
    ("/membership", {"from": "2026-01-01", "to": "2026-03-01"}),
    ("/membership", {"from": "2026-03-05", "to": "2026-03-01"}),
]


def test_bad_dates_and_areas_are_4xx_never_5xx(api):  # noqa: F811
    for path, params in BAD:
        r = get(api, path, **params)
        assert 400 <= r.status_code < 500, (path, params, r.status_code, r.text)
        assert "detail" in r.json()


def test_an_unknown_or_unseen_area_is_an_empty_answer_or_403(api):  # noqa: F811
    assert get(api, "/lineloss", area="nope", **RANGE).json() == []
    assert get(api, "/passrate", who="vera", **RANGE).json()[0]["areas"] == 1  # A2 only
    assert get(api, "/areas/A1/trend", who="vera").status_code == 403
    bad = api.client.put("/api/v1/analytics/areas/A2/target", json={"target": "NaN"},
                         headers=api.as_("sid"))  # fmt: skip
    assert bad.status_code == 422


def test_csv_names_areas_in_chinese_readably(api):  # noqa: F811
    """台区名称 next to the ids, UTF-8 in the CSV cells (lists too, not \\uXXXX escapes)."""
    from sqlalchemy import update

    from headend.db import writing
    from headend.db.tables import areas

    with writing(api.engine) as conn:
        conn.execute(update(areas).where(areas.c.id == "A2").values(name="城东1号台区"))
    r = api.client.put("/api/v1/analytics/areas/A2/target", json={"target": "0.10", "low": "0.05"},
                       headers=api.as_("sid"))  # fmt: skip
    assert r.status_code == 200
    assert api.client.post("/api/v1/analytics/recompute", json=RANGE,
                           headers=api.as_("olga")).status_code == 200  # fmt: skip
    text = get(api, "/lineloss", area="A2", **{"format": "csv"}, **RANGE).content.decode("utf-8")
    assert next(csv.DictReader(io.StringIO(text)))["name"] == "城东1号台区"
    text = get(api, "/passrate", **{"format": "csv"}, **RANGE).content.decode("utf-8")
    first = next(csv.DictReader(io.StringIO(text)))
    assert (first["failing"], first["failing_names"]) == ('["A2"]', '["城东1号台区"]')
    assert first["computable_rate"] == "0.3333"  # A2 of A1, A2, B1 (no area meter in A1, B1)


def test_an_area_without_a_stored_result_is_unassessed_not_left_out(ops):
    """Only A2's recompute ran for the day (A1's and B1's failed or never ran): the archive's
    areas A1 and B1 still count, as 未计算, so the pass rate is 1 of 3, not 1 of 1."""
    from datetime import UTC, date, datetime
    from decimal import Decimal as D

    from headend.analytics import store
    from headend.analytics.lineloss import area_loss
    from headend.analytics.model import MeterSpan, Point, Registers
    from headend.db import writing
    from tests.headend.ops_support import SHANGHAI

    d1, d2 = date(2026, 3, 1), date(2026, 3, 2)
    pts = [Point("T", "area_total", (MeterSpan("T"),)), Point("c", "customer", (MeterSpan("c"),))]
    regs = {"T": Registers({d1: D(0), d2: D(100)}), "c": Registers({d1: D(0), d2: D(95)})}
    r = area_loss("A2", pts, regs, d1, d2, SHANGHAI, band=(D(0), D("0.08")))
    with writing(ops.engine) as conn:
        store.save_losses(conn, [("day", r, D("0.08"))], datetime(2026, 3, 9, tzinfo=UTC))
    (day,) = get(ops, "/passrate", **{"from": "2026-03-01", "to": "2026-03-01"}).json()
    assert (day["areas"], day["passed"], day["pass_rate"]) == (3, 1, "0.3333")
    assert day["unassessed"] == ["A1", "B1"] and day["computable_rate"] == "0.3333"
    (scoped,) = get(
        ops, "/passrate", who="vera", **{"from": "2026-03-01", "to": "2026-03-01"}
    ).json()
    assert (scoped["areas"], scoped["pass_rate"]) == (1, "1.0000")  # vera sees A2 only
    from headend.db import reading
    from headend.web.views import analytics as console

    with reading(ops.engine) as conn:  # the console overview's tile counts them too
        tile = console.pass_rate(conn, ["A1", "A2", "B1"], d1)
    assert tile is not None and (tile["areas"], tile["passed"]) == (3, 1), tile


def test_a_target_below_the_configured_low_needs_its_own_low(ops):
    """With ``default_band_low`` 0.02, a target of 0.01 alone would make the band [0.02, 0.01]:
    every rate fails.  Refused with 400; with its own low it is accepted."""
    from decimal import Decimal as D

    from headend.analytics.settings import AnalyticsSettings

    ops.client.app.state.analytics_settings = AnalyticsSettings(default_band_low=D("0.02"))
    url = "/api/v1/analytics/areas/A2/target"
    bad = ops.client.put(url, json={"target": "0.01"}, headers=ops.as_("sid"))
    assert bad.status_code == 400 and "low" in bad.json()["detail"]
    ok = ops.client.put(url, json={"target": "0.01", "low": "0"}, headers=ops.as_("sid"))
    assert ok.status_code == 200
