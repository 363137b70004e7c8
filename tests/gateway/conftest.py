"""Fixtures of the gateway tests: a manual clock, a fresh store, sweeps of synthetic readings."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from gateway.store import Store
from protocols.model import Reading, ReadingKind
from protocols.quantities import ENERGY_TARIFFS, ENERGY_TOTAL
from taiqu.clock import ManualClock

START = datetime(2026, 11, 24, 0, 0, tzinfo=UTC)


def meter_ids(count: int) -> list[str]:
    """DL/T 645-style 12-digit addresses."""
    return [f"2026112{n:05d}" for n in range(1, count + 1)]


def sweep(meters: list[str], at: datetime, *, base: int = 0) -> list[Reading]:
    """One energy sweep: total and four tariffs per meter, as the poller produces it."""
    out = []
    for i, meter in enumerate(meters):
        total = Decimal(1000 + base + i) + Decimal("0.25")
        values = [total] + [total / 4 for _ in ENERGY_TARIFFS]
        for name, value in zip((ENERGY_TOTAL, *ENERGY_TARIFFS), values, strict=True):
            out.append(
                Reading(
                    meter=meter,
                    quantity=name,
                    value=value.quantize(Decimal("0.01")),
                    gateway_time=at + timedelta(seconds=i),
                    meter_time=at + timedelta(seconds=i - 2),
                )
            )
    return out


def frozen(meter: str, freeze_time: datetime) -> list[Reading]:
    """A daily frozen record of one meter."""
    return [
        Reading(
            meter=meter,
            quantity=ENERGY_TOTAL,
            value=Decimal("1234.50"),
            gateway_time=freeze_time + timedelta(minutes=5),
            kind=ReadingKind.DAILY_FROZEN,
            freeze_time=freeze_time,
        )
    ]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def store(tmp_path: Path, clock: ManualClock) -> Iterator[Store]:
    s = Store.open(tmp_path / "store.db", clock=clock)
    yield s
    s.close()
