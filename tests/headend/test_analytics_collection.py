"""Collection quality (pure): rates first sweep / back-filled, online rate, checks, failing."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal as D
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from headend.analytics.collection import (
    Due,
    FrozenFact,
    SessionFact,
    collected_in_time,
    collection_rates,
    failing_meters,
    online_rate,
    reading_checks,
)
from headend.analytics.model import boundary

Z = ZoneInfo("Asia/Shanghai")
DAY = date(2026, 3, 2)
T = boundary(DAY, Z)


def fact(meter: str, late: timedelta, *flags: str) -> FrozenFact:
    return FrozenFact(meter, DAY, D(1), T + late, frozenset(flags))


def test_rates_count_collected_in_time_and_backfill_separately():
    due = [Due(f"m{i}", "A", "gw1") for i in range(4)] + [
        Due("n0", "B", "gw2"),
        Due("t", "A", None, "area_total"),
    ]
    frozen = {
        "m0": fact("m0", timedelta(minutes=5)),
        "m1": fact("m1", timedelta(hours=2), "backfilled"),  # read by back-fill the same day
        "m2": fact("m2", timedelta(days=2)),  # read two days late
        "t": fact("t", timedelta(minutes=7)),
    }
    rates = {
        (r.scope, r.key): r for r in collection_rates(DAY, due, frozen, Z, online={"gw1": D("0.5")})
    }
    a = rates[("area", "A")]
    assert (a.due, a.collected, a.obtained, a.missing) == (5, 2, 4, ("m3",))
    assert a.success_rate == D("0.4") and a.rate_obtained == D("0.8")
    g = rates[("gateway", "gw1")]
    assert (g.due, g.collected, g.obtained, g.online_rate) == (4, 1, 3, D("0.5"))
    assert rates[("area", "B")].rate_obtained == 0 and rates[("gateway", "gw2")].online_rate is None
    assert not collected_in_time(fact("x", timedelta(hours=25)), Z)


def test_collection_cutoff_is_configurable():
    due = [Due("m0", "A", "gw1"), Due("m1", "A", "gw1")]
    frozen = {"m0": fact("m0", timedelta(hours=3)), "m1": fact("m1", timedelta(hours=30))}
    strict = collection_rates(DAY, due, frozen, Z, cutoff=timedelta(hours=2))[0]
    loose = collection_rates(DAY, due, frozen, Z, cutoff=timedelta(hours=36))[0]
    default = collection_rates(DAY, due, frozen, Z)[0]
    assert (strict.success_rate, default.success_rate, loose.success_rate) == (0, D("0.5"), 1)


def test_online_rate_from_session_history():
    start, end = T, T + timedelta(days=1)
    s = [
        SessionFact("gw", T - timedelta(days=3), "online"),
        SessionFact("gw", T + timedelta(hours=6), "offline"),
        SessionFact("gw", T + timedelta(hours=12), "online"),
    ]
    assert online_rate(s, start, end) == D("0.75")
    assert online_rate(s[:1], start, end) == 1
    assert online_rate([SessionFact("gw", T + timedelta(hours=18), "online")], start, end) == D(
        "0.25"
    )
    assert online_rate([], start, end) is None


def test_checks_backwards_jump_stopped():
    days = [DAY + timedelta(days=i) for i in range(8)]
    values = dict(zip(days, [D(v) for v in (10, 12, 11, 900, 900, 900, 900, 901)], strict=True))
    flags = reading_checks("m", values, max_kwh_per_day=D(300), supplied={d: True for d in days})
    assert [(f.day, f.kind) for f in flags] == [
        (days[2], "backwards"),
        (days[3], "jump"),
        (days[6], "stopped"),
    ]
    # unsupplied area: not a stopped meter
    assert [f.kind for f in reading_checks("m", values, max_kwh_per_day=D(1000), supplied={})] == [
        "backwards"
    ]


def test_failing_meters_keep_failing():
    last = DAY + timedelta(days=6)
    due = {m: Due(m, "A", "gw") for m in ("ok", "flaky", "dead")}
    week = {DAY + timedelta(days=i) for i in range(7)}
    obtained = {"ok": week, "flaky": week - {DAY, DAY + timedelta(days=3)}, "dead": {DAY}}
    out = failing_meters(due, obtained, last)
    assert [(f.meter, f.missing_days, f.consecutive, f.last_obtained) for f in out] == [
        ("dead", 6, 6, DAY),
        ("flaky", 2, 0, last),
    ]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.decimals(min_value=0, max_value=50, places=2), min_size=2, max_size=20))
def test_a_growing_register_never_looks_backwards(increments):
    values, v = {}, D(100)
    for i, inc in enumerate(increments):
        v += inc
        values[DAY + timedelta(days=i)] = v
    kinds = {f.kind for f in reading_checks("m", values, max_kwh_per_day=D(50))}
    assert "backwards" not in kinds and "jump" not in kinds
