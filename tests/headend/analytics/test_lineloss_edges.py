"""Line loss as a line-loss office's data would break it: PV without registers, replacements
onto a bidirectional meter, multiplier changes, rounding at 0 and at the band's edges."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import pytest

from headend.analytics.lineloss import Flag, area_loss
from headend.analytics.model import MeterSpan, Point, Registers, boundary
from headend.analytics.passrate import pass_rates, verdict

Z = ZoneInfo("Asia/Shanghai")
D1, D2 = date(2026, 3, 1), date(2026, 3, 2)


def regs(*values: str, first: date = D1) -> Registers:
    return Registers({first + timedelta(days=i): D(v) for i, v in enumerate(values)})


def two(total: str, sales: str, **kw):
    pts = [Point("T", "area_total", (MeterSpan("T"),)), Point("c", "customer", (MeterSpan("c"),))]
    return area_loss("A", pts, {"T": regs("0", total), "c": regs("0", sales)}, D1, D2, Z, **kw)


def test_a_negative_loss_too_small_for_the_rate_is_still_negative():
    """−0.01 kWh on 10 000 kWh rounds to a rate of −0.0000: still 负损, never 合格."""
    r = two("10000", "10000.01", band=(D(0), D("0.08")))
    assert r.loss == D("-0.01")
    assert Flag.NEGATIVE_LOSS in r.flags and r.passed is False
    row = {"period": "day", "start": "2026-03-01", "area": "A", "rate": str(r.rate),
           "loss": str(r.loss), "detail": {"band": ["0", "0.08"]}}  # fmt: skip
    assert verdict(row) == "negative"
    (p,) = pass_rates([row])
    assert (p.passed, p.negative, p.failing) == (0, 1, ("A",))


@pytest.mark.parametrize(
    ("sales", "flags", "passed"),
    [("100", [], True),  # rate exactly 0: inside a band starting at 0
     ("92", [], True),  # exactly the top: inside
     ("91.99", [Flag.HIGH_LOSS], False),  # 8.01 %
     ("98", [], True),  # exactly the low edge 2 %
     ("98.01", [Flag.LOW_LOSS], False)],
)  # fmt: skip
def test_band_edges_are_inside(sales, flags, passed):
    low = D("0.02") if sales.startswith("98") else D(0)
    r = two("100", sales, band=(low, D("0.08")))
    assert [f for f in r.flags if f.endswith("_loss")] == flags and r.passed is passed
    row = {"period": "day", "start": "x", "area": "A", "rate": str(r.rate), "loss": str(r.loss),
           "detail": {"band": [str(low), "0.08"]}}  # fmt: skip
    assert (verdict(row) == "pass") is passed


def test_zero_supply_gives_no_rate_and_no_division():
    r = two("0", "0", band=(D(0), D("0.08")))
    assert r.supply == 0 and r.rate is None and r.passed is None
    r = two("0", "5", band=(D(0), D("0.08")))
    assert r.rate is None and Flag.NEGATIVE_LOSS in r.flags


def test_export_above_import_for_the_whole_area_is_no_negative_sales():
    """A sunny day: the area sends more upstream than it takes."""
    pts = [
        Point("T", "area_total", (MeterSpan("T"),)),
        Point("c1", "customer", (MeterSpan("c1"),), pv=True),
        Point("c2", "customer", (MeterSpan("c2"),)),
    ]
    imp = {"T": regs("0", "20"), "c1": regs("0", "10"), "c2": regs("0", "30")}
    exp = {"T": regs("0", "100"), "c1": regs("0", "125")}
    r = area_loss("A", pts, imp, D1, D2, Z, exports=exp, band=(D(0), D("0.08")))
    # supply 20 + 125 = 145, sales 10 + 30 + 100 = 140
    assert (r.supply, r.sales, r.loss, r.rate) == (D(145), D(140), D(5), D("0.0345"))
    assert r.passed


def test_area_meter_flagged_pv_needs_its_export():
    pts = [
        Point("T", "area_total", (MeterSpan("T"),), pv=True),
        Point("c", "customer", (MeterSpan("c"),)),
    ]
    imp = {"T": regs("0", "100"), "c": regs("0", "95")}
    r = area_loss("A", pts, imp, D1, D2, Z, exports={})
    assert r.supply is None and Flag.NO_SUPPLY in r.flags and r.rate is None


def test_pv_export_missing_on_one_day_only_invalidates_that_day():
    pts = [
        Point("T", "area_total", (MeterSpan("T"),)),
        Point("c", "customer", (MeterSpan("c"),), pv=True),
    ]
    imp = {"T": regs("0", "100", "200", "300"), "c": regs("0", "95", "190", "285")}
    exp = {
        "T": regs("0", "0", "0", "0"),
        "c": Registers({D1: D(0), D2: D(10), D2 + timedelta(days=2): D(30)}),
    }
    got = [area_loss("A", pts, imp, D1 + timedelta(days=i), D1 + timedelta(days=i + 1), Z,
                     exports=exp) for i in range(3)]  # fmt: skip
    assert [r.rate for r in got] == [D("0.1364"), None, None]  # 15 / 110, then no export
    assert got[1].missing == ["c"] and got[1].points[1].reason.startswith("export missing:c@")


def test_replacement_onto_a_bidirectional_meter_for_new_pv():
    """Old import-only meter o (never had an export register) replaced at 10:00 by a PV meter n:
    the old meter's export is 0, not missing; the new one's export counts from its start."""
    at = boundary(D1, Z) + timedelta(hours=10)
    pts = [
        Point("T", "area_total", (MeterSpan("T"),)),
        Point("c", "customer", (
            MeterSpan("o", end=at, end_value=D("50"), pv=False),
            MeterSpan("n", start=at, start_value=D("0"), start_export=D("0"), pv=True),
        ), pv=True),
    ]  # fmt: skip
    imp = {"T": regs("0", "100"), "o": regs("40"), "n": Registers({D2: D("45")})}
    exp = {"T": regs("0", "0"), "n": Registers({D2: D("10")})}
    r = area_loss("A", pts, imp, D1, D2, Z, exports=exp)
    # supply 100 + 10 exported; sales (50 − 40) + 45 = 55
    assert r.missing == [] and (r.supply, r.sales, r.loss) == (D(110), D(55), D(55))


def test_an_unread_export_is_only_forgiven_for_the_import_only_meter_before_pv():
    """The rule above does not excuse the area meter of a PV area, nor a PV meter itself."""
    pts = [
        Point("T", "area_total", (MeterSpan("T", pv=False),)),
        Point("c", "customer", (MeterSpan("c", pv=True),), pv=True),
    ]
    imp = {"T": regs("0", "100"), "c": regs("0", "50")}
    r = area_loss("A", pts, imp, D1, D2, Z, exports={"c": regs("0", "10")})
    assert r.supply is None and Flag.NO_SUPPLY in r.flags
    r = area_loss("A", pts, imp, D1, D2, Z, exports={"T": regs("0", "0")})
    assert r.missing == ["c"] and r.loss is None


def test_an_unflagged_generator_missing_its_export_freeze_is_invalid_not_zero():
    """c has PV the archive does not know of; its export register is read and rises.  On a
    day its export freeze is missing, counting 0 would drop its export from supply: a false
    负损.  An export register that never moved (no generation) still counts 0."""
    pts = [Point("T", "area_total", (MeterSpan("T"),)), Point("c", "customer", (MeterSpan("c"),))]
    imp = {"T": regs("0", "100", "190"), "c": regs("0", "100", "200")}  # c exported ~12 on D2
    rising = {"T": regs("0", "0", "0"), "c": Registers({D1: D(0), D2: D(10)})}
    r = area_loss("A", pts, imp, D1, D2, Z, exports=rising)
    assert (r.supply, r.loss) == (D(110), D(10))  # the export counts when read
    r = area_loss("A", pts, imp, D2, D2 + timedelta(days=1), Z, exports=rising)
    assert r.loss is None and r.missing == ["c"] and Flag.NEGATIVE_LOSS not in r.flags
    still = {"T": regs("0", "0", "0"), "c": Registers({D1: D(3), D2: D(3)})}
    r = area_loss("A", pts, imp, D2, D2 + timedelta(days=1), Z, exports=still)
    assert (r.loss, r.missing) == (D(-10), [])  # no generation known: the 负损 is shown


def test_a_pv_customer_gone_before_the_period_does_not_require_the_area_export():
    """The area's only PV home was removed before D1: from then on the area meter's export (an
    old area meter without that register) is not needed; the days stay computable."""
    gone = boundary(D1, Z) - timedelta(days=3)
    pts = [
        Point("T", "area_total", (MeterSpan("T"),)),
        Point("p", "customer", (MeterSpan("p", end=gone, end_value=D(9)),), pv=True),
        Point("c", "customer", (MeterSpan("c"),)),
        Point("g", "generation", (MeterSpan("g"),), pv=True),  # not supply, not sales
    ]
    imp = {"T": regs("0", "100"), "c": regs("0", "95"), "g": regs("0", "1")}
    r = area_loss("A", pts, imp, D1, D2, Z, exports={"g": regs("0", "7")})
    assert (r.supply, r.loss, r.rate) == (D(100), D(5), D("0.0500"))
