"""Plain facts the analytics compute from: metering points, register values and day boundaries.

A *day* is a date in the meters' zone; its *boundary* is the instant of 00:00 local on that date,
when every meter freezes its registers (日冻结).  The energy of day D is
``register(boundary D+1) − register(boundary D)`` × multiplier, for the import (forward) and the
export (reverse) register alike.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from functools import lru_cache
from zoneinfo import ZoneInfo


class Method(StrEnum):
    """How a value was obtained (the worse of its parts)."""

    DAILY_FROZEN = "daily_frozen"
    INTERPOLATED = "interpolated"  # fallback: linear between interval readings (flagged)


@lru_cache(maxsize=4096)
def boundary(day: date, zone: ZoneInfo) -> datetime:
    """The UTC instant of 00:00 local on ``day``."""
    return datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)


def freeze_day(instant: datetime, zone: ZoneInfo) -> date:
    """The date whose 00:00 is nearest ``instant`` (a meter's freeze, clock skew tolerated)."""
    return (instant.astimezone(zone) + timedelta(hours=12)).date()


def days(start: date, end: date) -> list[date]:
    """Dates in ``[start, end)``."""
    return [start + timedelta(days=i) for i in range((end - start).days)]


@dataclass(frozen=True)
class Registers:
    """One meter's energy register (import or export): daily frozen values and interval readings."""

    frozen: Mapping[date, Decimal] = field(default_factory=dict)
    interval: Sequence[tuple[datetime, Decimal]] = ()  # sorted by time


@dataclass(frozen=True)
class MeterSpan:
    """One physical meter at a metering point over ``[start, end)`` (None: open)."""

    meter: str
    multiplier: Decimal = Decimal(1)
    start: datetime | None = None
    end: datetime | None = None
    start_value: Decimal | None = None  # register when installed (replacement's new start)
    end_value: Decimal | None = None  # register when removed (replacement's old final)
    # the same meter goes on across this edge with another multiplier (a CT change without a
    # replacement): the register there is read from the meter itself, not from a record
    start_read: bool = False
    end_read: bool = False
    start_export: Decimal | None = None  # the export register at a replacement (if recorded)
    end_export: Decimal | None = None
    # this meter (its archive version) generates: its export must be read.  None: the point's
    # flag decides.  False on an import-only meter replaced by a PV customer's bidirectional one:
    # it had no export register, so its part of the period exported nothing
    pv: bool | None = None


@dataclass(frozen=True)
class Point:
    """A metering point of an area: its role and its meters in time order."""

    point: str
    role: str  # customer | area_total | generation (behind a customer's meter: not in line loss)
    meters: tuple[MeterSpan, ...]
    pv: bool = False  # generates (rooftop PV): its export register must be read
    category: str = ""  # tariff category (similar customers for the peer comparison)
    model: str = ""  # meter model (its rating: similar customers)


def local_date_at(instant: datetime, zone: ZoneInfo) -> date | None:
    """The date whose 00:00 local is exactly ``instant`` (None: not a day boundary)."""
    day = instant.astimezone(zone).date()
    return day if boundary(day, zone) == instant else None
