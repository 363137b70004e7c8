"""Estimation (VEE's E), pure: an open gap after a meter's last validated reading, filled with
estimated register readings from the meter's own history (no database, no clock).

Charging works on cumulative registers, so a gap *between* two validated readings needs no
estimate: the later reading closes the interval with the exact energy, and where an interval must
be cut (a month start, a tariff change) the energy is shared by time — linear interpolation of the
register between the two readings.  What needs an estimate is an **open** gap: the last validated
reading is ``estimate_after_hours`` old and nothing has come since (a dead modem, a held reading
awaiting an operator).  Then::

    last validated reading (t₀, v₀) ─── est ─── est ─── est ──► now
                                     00:00   00:00   00:00        local midnights in (t₀, now]
    rate  r = Σ energy / Σ hours of the meter's validated intervals in the
              ``estimate_history_days`` before t₀ (four weeks: every weekday equally),
              none when they cover less than ``estimate_min_history_hours``
    vₖ    = v₀ + round(r × hours(t₀, tₖ), 0.01)      (from v₀ each time: rounding never drifts)

Each estimated reading ends one estimated interval, so a gap grows by one interval a day with
stable keys; nothing is estimated more than ``estimate_max_days`` past t₀.  Limits: the rate is a
flat average (no time-of-day or weather shape: TOU shares an estimate by time), a meter with too
little history is not estimated, and a meter that stopped for good keeps being estimated until
``estimate_max_days`` (the operator's estimate list shows it).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

RESOLUTION = Decimal("0.01")  # a DL/T 645 energy register's step (XXXXXX.XX kWh)
METHOD = "history_mean"


@dataclass(frozen=True)
class EstimatedReading:
    """One estimated register reading and the interval it closes."""

    start: datetime
    end: datetime
    start_value: Decimal
    end_value: Decimal

    @property
    def delta(self) -> Decimal:
        return self.end_value - self.start_value


def hours(a: datetime, b: datetime) -> Decimal:
    """Whole seconds between ``a`` and ``b`` as exact hours."""
    return Decimal(int((b - a).total_seconds())) / Decimal(3600)


def mean_rate(
    intervals: Iterable[tuple[datetime, datetime, Decimal]], min_hours: Decimal
) -> Decimal | None:
    """Energy per hour over ``(start, end, energy)`` intervals; None below ``min_hours`` covered."""
    energy, covered = Decimal(0), Decimal(0)
    for start, end, e in intervals:
        energy += e
        covered += hours(start, end)
    if covered <= 0 or covered < min_hours:
        return None
    return energy / covered


def midnights(after: datetime, until: datetime, zone: Any) -> list[datetime]:
    """Local midnights in ``(after, until]``, as UTC instants (exact differences across DST)."""
    local = after.astimezone(zone)
    day = datetime(local.year, local.month, local.day, tzinfo=zone) + timedelta(days=1)
    out = []
    while day <= until:
        out.append(day.astimezone(UTC))
        nxt = day + timedelta(days=1, hours=2)  # past a DST change, then back to midnight
        day = datetime(nxt.year, nxt.month, nxt.day, tzinfo=zone)
    return out


def fill(
    origin: tuple[datetime, Decimal],
    chain_from: tuple[datetime, Decimal],
    rate: Decimal,
    ends: Iterable[datetime],
) -> list[EstimatedReading]:
    """Estimated readings at ``ends`` after ``chain_from`` (the last reading, actual or estimated),
    valued from ``origin`` (the last validated reading) at ``rate`` register units an hour."""
    t0, v0 = origin
    prev_t, prev_v = chain_from
    out = []
    for end in sorted(ends):
        if end <= prev_t:
            continue
        value = v0 + (rate * hours(t0, end)).quantize(RESOLUTION, ROUND_HALF_UP)
        value = max(value, prev_v)  # a register never runs backwards
        out.append(EstimatedReading(prev_t, end, prev_v, value))
        prev_t, prev_v = end, value
    return out
