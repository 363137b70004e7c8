"""The reading model: aware times everywhere, invalid meter times become None."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from protocols import quantities
from protocols.model import MeterTime, Reading


def test_meter_time_keeps_local_and_utc():
    mt = MeterTime.from_fields(26, 11, 24, 13, 0, 0)
    assert mt is not None
    assert mt.local == datetime(2026, 11, 24, 13, 0)
    assert mt.utc == datetime(2026, 11, 24, 5, 0, tzinfo=UTC)
    assert MeterTime.from_utc(mt.utc).local == mt.local


@pytest.mark.parametrize("fields", [(0, 0, 0), (26, 13, 1), (26, 2, 30), (26, 1, 1, 24)])
def test_zero_or_invalid_meter_time_is_none(fields):
    assert MeterTime.from_fields(*fields) is None


def test_reading_requires_aware_times():
    with pytest.raises(ValueError, match="timezone-aware"):
        Reading("1", quantities.ENERGY_TOTAL, Decimal(1), datetime(2026, 1, 1))


def test_quantity_table_has_tariffs_and_units():
    assert quantities.get("energy.active.import.t4").unit == "kWh"
    assert "valley" in quantities.get("energy.active.import.t4").description
    assert quantities.get("voltage.a").unit == "V"
    with pytest.raises(KeyError, match="unknown quantity"):
        quantities.get("energy.nope")
