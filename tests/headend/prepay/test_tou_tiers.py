"""Case 6 of issue 18: time-of-use with tiers (TOU base prices + a tier surcharge on the total),
平 = 总 − 尖 − 峰 − 谷, holiday TOU and seasonal periods — hand-computed, pure pricing."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest

from headend.prepay.charges import PointPlan, Sample, chain
from headend.prepay.errors import TariffError
from headend.prepay.tariffs import parse_definition
from tests.headend.test_prepay_support import local
from tests.headend.test_tariff_pricing import book, charge_all, one, total

PRICES = {"1": "1.0", "2": "0.8", "3": "0.5", "4": "0.3"}
DAYTIME = [
    {"start": "00:00", "end": "08:00", "slot": 4},
    {"start": "08:00", "end": "20:00", "slot": 2},
    {"start": "20:00", "end": "00:00", "slot": 3},
]
TOU_TIERED = {
    "kind": "tou_tiered",
    "prices": PRICES,
    "periods": DAYTIME,
    "period": "monthly",
    "steps": [
        {"upto": "100", "price": "0"},
        {"upto": "200", "price": "0.05"},
        {"upto": None, "price": "0.3"},
    ],
}


def sample(t: datetime, total: str, *r: str) -> Sample:
    registers = {n: Decimal(v) for n, v in enumerate(r, start=1)} if r else None
    return Sample(t, Decimal(total), registers)


def priced(definition, samples):
    intervals = chain({"m": samples}, [], one).intervals
    return charge_all(PointPlan("x"), book(x=definition), intervals)


def test_tou_base_prices_plus_a_tier_surcharge_on_the_total():
    # 1st: 150 kWh = peak 90, flat 20, valley 40: 72 + 10 + 12 = 94 base; surcharge 100 × 0 +
    #      50 × 0.05 = 2.5 → 96.5.
    # 2nd: 100 kWh = peak 60, flat 10, valley 30: 48 + 5 + 9 = 62 base; the month's total goes
    #      150 → 250: 50 × 0.05 + 50 × 0.3 = 17.5 → 79.5.  Together 176.0.
    charges = priced(
        TOU_TIERED,
        [
            sample(local(2026, 3, 1), "0", "0", "0", "0", "0"),
            sample(local(2026, 3, 11), "150", "0", "90", "20", "40"),
            sample(local(2026, 3, 21), "250", "0", "150", "30", "70"),
        ],
    )
    assert [total(c) for c in [charges[:1], charges[1:]]] == [Decimal("96.5"), Decimal("79.5")]
    surcharge = [ln for lines in charges for ln in lines if ln.slot.startswith("surcharge")]
    assert sum(ln.energy for ln in surcharge) == Decimal(250)  # the total, counted once


def test_flat_is_the_total_minus_the_other_registers_where_configured():
    # Total delta 100; sharp 10, peak 30, valley 30; the flat register says 25 (it lags).
    # 平 = 100 − 10 − 30 − 30 = 30: 10 × 1.0 + 30 × 0.8 + 30 × 0.5 + 30 × 0.3 = 58.0, lines = 100.
    tou = {"kind": "tou", "prices": PRICES, "periods": DAYTIME}
    readings = [
        sample(local(2026, 3, 1), "1000", "100", "300", "300", "300"),
        sample(local(2026, 3, 2), "1100", "110", "330", "325", "330"),
    ]
    [derived] = priced({**tou, "flat_from_total": True}, readings)
    assert total([derived]) == Decimal("58.0")
    assert sum(ln.energy for ln in derived) == Decimal(100)
    [as_read] = priced(tou, readings)  # without it: 95 kWh priced, 55.5
    assert total([as_read]) == Decimal("55.5")


def test_registers_the_tariff_has_no_price_for_are_priced_by_its_periods_not_at_zero():
    # A two-period tariff (peak 08-22 at 0.568, valley 22-08 at 0.288) on a four-register meter:
    # 100 kWh over one day, registers sharp 10, peak 30, flat 30, valley 30.  Pricing the
    # registers gave sharp and flat energy away (30 × 0.568 + 30 × 0.288 = 25.68 for 100 kWh).
    # By the tariff's periods instead: 100 × 14/24 at 0.568 + 100 × 10/24 at 0.288
    # = 33.1333 + 12.0000 = 45.13 to the fen, all 100 kWh priced.
    two = {
        "kind": "tou",
        "prices": {"2": "0.568", "4": "0.288"},
        "periods": [
            {"start": "08:00", "end": "22:00", "slot": 2},
            {"start": "22:00", "end": "08:00", "slot": 4},
        ],
    }
    readings = [
        sample(local(2026, 3, 1), "1000", "100", "300", "300", "300"),
        sample(local(2026, 3, 2), "1100", "110", "330", "330", "330"),
    ]
    [lines] = priced(two, readings)
    assert sum(ln.energy for ln in lines) == Decimal(100)
    assert {ln.slot for ln in lines} == {"peak", "valley"}
    assert total([lines]).quantize(Decimal("0.01")) == Decimal("45.13")


def test_a_holiday_is_priced_with_the_holiday_periods():
    # 12 kWh between 08:00 and 20:00: on National Day all valley (3.6), the next day peak (9.6).
    holiday = {
        "kind": "tou",
        "prices": PRICES,
        "periods": DAYTIME,
        "holidays": ["2026-10-01"],
        "holiday_periods": [{"start": "00:00", "end": "00:00", "slot": 4}],
    }
    for day, cost in ((1, "3.6"), (2, "9.6")):
        charges = priced(
            holiday,
            [sample(local(2026, 10, day, 8), "0"), sample(local(2026, 10, day, 20), "12")],
        )
        assert total(charges) == Decimal(cost)


def test_a_season_has_its_own_periods():
    # July and August add a critical peak (尖) 11:00–13:00: 2 kWh then cost 2.0; in June 1.6.
    seasonal = {
        "kind": "tou",
        "prices": PRICES,
        "periods": DAYTIME,
        "seasons": [
            {
                "months": [7, 8],
                "periods": [
                    {"start": "00:00", "end": "08:00", "slot": 4},
                    {"start": "08:00", "end": "11:00", "slot": 2},
                    {"start": "11:00", "end": "13:00", "slot": 1},
                    {"start": "13:00", "end": "20:00", "slot": 2},
                    {"start": "20:00", "end": "00:00", "slot": 3},
                ],
            }
        ],
    }
    for month, cost in ((7, "2.0"), (6, "1.6")):
        charges = priced(
            seasonal,
            [sample(local(2026, month, 15, 11), "0"), sample(local(2026, month, 15, 13), "2")],
        )
        assert total(charges) == Decimal(cost)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"holidays": ["2026-10-01"]}, "holiday_periods"),
        ({"seasons": [{"months": [7], "periods": DAYTIME[:1]}]}, "cover the day"),
        ({"seasons": [{"months": [7, 7], "periods": DAYTIME}]}, "months"),
        ({"steps": [{"upto": "100", "price": "0"}]}, "the last has none"),
    ],
)
def test_bad_definitions_name_the_problem(change, message):
    with pytest.raises(TariffError, match=message):
        parse_definition({**TOU_TIERED, **change})
