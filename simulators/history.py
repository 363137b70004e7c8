"""What a meter keeps of its past besides daily freezes: settlement values and load records.

- **Settlement periods** (DL/T 645-2007 DI0 01–0C of energy identifiers, 1997 94xx/98xx): the
  registers at the settlement instant, 00:00 on day 1 of the month on the meter's own clock
  (the factory default settlement day; the n-th previous period is n months back).
- **Load profile records** (DI3 = 06, see ``protocols.dlt645.load_profile``): one record per
  ``load_profile_interval_min`` on the meter's clock (aligned to the hour), values as the meter
  measured them at that instant; demand is the mean power over the interval before it.

Both are pure functions of the meter's state (no stored copies): a period or record before the
meter's origin or installation, or after now, does not exist (``NoData`` → abnormal reply).
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

from protocols.dlt645.load_profile import CATEGORIES, EARLIEST, MOST_RECENT, ProfileRecord
from protocols.model import MeterTime
from simulators.meter import Meter, total
from simulators.readings import energy_values, instant_values

MAX_RECORDS = 99


class NoData(Exception):
    """The meter holds no value for what was asked (abnormal reply, not a crash)."""


def _exists(meter: Meter, instant: float, ts: float) -> bool:
    return meter.origin <= instant <= ts and instant >= meter.spec.installed_at


def settlement_instant(meter: Meter, n: int, ts: float) -> float:
    """The true instant of the n-th last settlement (00:00 of day 1, meter clock)."""
    shown = meter.meter_time(ts)
    year, month = shown.year, shown.month - (n - 1)
    while month < 1:
        year, month = year - 1, month + 12
    return meter._instant_of_local(ts, datetime(year, month, 1))


def settlement_values(meter: Meter, n: int, ts: float) -> dict[str, Any]:
    """Energy registers of the n-th previous settlement period (``NoData`` if none)."""
    instant = settlement_instant(meter, n, ts)
    if not _exists(meter, instant, ts):
        raise NoData(f"settlement period -{n}")
    return dict(energy_values(meter, instant))


def _record_values(meter: Meter, instant: float, interval_s: float) -> dict[str, Any]:
    values: dict[str, Any] = dict(instant_values(meter, instant, 1))
    imp, exp = meter.registered(instant)
    tan_phi = math.tan(math.acos(meter.spec.profile.power_factor))
    before = meter.registered(instant - interval_s)[0]
    demand = max(0.0, (total(imp) - total(before)) * 3600 / interval_s)
    values.update(
        {
            "energy.active.import.total": total(imp),
            "energy.active.export.total": total(exp),
            "energy.reactive.combined1.total": total(imp) * tan_phi,
            "energy.reactive.combined2.total": total(exp) * tan_phi,
            "energy.reactive.q1.total": total(imp) * tan_phi,
            "energy.reactive.q2.total": 0.0,
            "energy.reactive.q3.total": total(exp) * tan_phi,
            "energy.reactive.q4.total": 0.0,
            "demand.active": demand,
            "demand.reactive": demand * tan_phi,
        }
    )
    return values


def _on_grid(local: datetime, step: timedelta) -> datetime:
    """The first record time at or after ``local`` (records align to midnight)."""
    day = local.replace(hour=0, minute=0, second=0, microsecond=0)
    slots = -(-(local - day) // step)  # ceiling division of timedeltas
    return day + slots * step


def load_records(
    meter: Meter, category: int, which: int, count: int, start: MeterTime | None, ts: float
) -> list[tuple[datetime, dict[str, Any]]]:
    """(meter-local time, values) of the records a load profile read asks for."""
    step = timedelta(minutes=meter.spec.personality.load_profile_interval_min)
    shown = meter.meter_time(ts).replace(second=0, microsecond=0)
    midnight = shown.replace(hour=0, minute=0)
    latest = midnight + ((shown - midnight) // step) * step
    earliest_local = meter.meter_time(max(meter.origin, meter.spec.installed_at))
    count = min(count, MAX_RECORDS)
    if which == MOST_RECENT:
        first = latest - (count - 1) * step
    elif which == EARLIEST:
        first = earliest_local
    else:
        if start is None:
            raise NoData("load profile read without a start time")
        first = start.local
    first = max(_on_grid(first, step), _on_grid(earliest_local, step))
    out: list[tuple[datetime, dict[str, Any]]] = []
    local = first
    while local <= latest and len(out) < count:
        instant = meter._instant_of_local(ts, local)
        if _exists(meter, instant, ts):
            out.append((local, _record_values(meter, instant, step.total_seconds())))
        local += step
    if not out:
        raise NoData("no load records in that range")
    return out


def profile_value(
    meter: Meter, category: int, which: int, count: int, start: MeterTime | None, ts: float
) -> tuple[ProfileRecord, ...]:
    """The records as the codec encodes them (values quantised by the caller's layouts)."""
    _, fields = CATEGORIES[category]
    records = load_records(meter, category, which, count, start, ts)
    return tuple(
        ProfileRecord(MeterTime(local, meter.spec.zone), {name: values[name] for name, _ in fields})
        for local, values in records
    )


__all__ = ["NoData", "load_records", "profile_value", "settlement_instant", "settlement_values"]
