"""Load records and settlement values in the store: sent with their own times, and never taken
for a daily freeze (a settlement at 00:00 on the 1st shares the freeze's instant)."""

from __future__ import annotations

from dataclasses import replace

from gateway.store import Store
from protocols.model import ReadingKind
from protocols.uplink import ReadingRecord
from tests.gateway.conftest import START, frozen


def test_a_settlement_at_the_freeze_instant_does_not_count_as_the_daily_freeze(
    store: Store,
) -> None:
    meter = "202611240001"
    (reading,) = frozen(meter, START)
    store.append_readings([replace(reading, kind=ReadingKind.SETTLEMENT)])
    store.append_readings([replace(reading, kind=ReadingKind.LOAD_PROFILE, meter_time=START)])
    # the daily frozen reader would skip the day's freeze if either were taken for it
    assert not store.has_frozen(meter, START) and store.last_frozen(meter) is None
    records = [r.record() for r in store.pending(0, 10)]
    assert [(r.kind, r.freeze_time) for r in records if isinstance(r, ReadingRecord)] == [
        (ReadingKind.SETTLEMENT, START),
        (ReadingKind.LOAD_PROFILE, START),
    ]
    store.append_readings(frozen(meter, START))
    assert store.has_frozen(meter, START)
