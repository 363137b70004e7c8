"""Time values of DL/T 698.45 A-XDR (clause 7.3.2): intervals, dates and times.

Date and time fields keep the raw numbers (FFH / FFFFH mean "not given"), so a meter's odd
timestamp round-trips unchanged; ``to_datetime`` gives a ``datetime`` or ``None``.  Wire forms
live in ``axdr``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum

from protocols.dlt698.errors import check_range


class TIUnit(IntEnum):
    """Units of a time interval."""

    SECOND = 0
    MINUTE = 1
    HOUR = 2
    DAY = 3
    MONTH = 4
    YEAR = 5


@dataclass(frozen=True, slots=True)
class TI:
    """Time interval: unit and count."""

    unit: int
    interval: int

    def __post_init__(self) -> None:
        check_range(self.unit, 0, 255, "TI unit")
        check_range(self.interval, 0, 0xFFFF, "TI interval")


@dataclass(frozen=True, slots=True)
class DateTimeS:
    """date_time_s: year (2 bytes), month, day, hour, minute, second."""

    year: int
    month: int
    day: int
    hour: int = 0
    minute: int = 0
    second: int = 0

    def __post_init__(self) -> None:
        check_range(self.year, 0, 0xFFFF, "year")
        for name in ("month", "day", "hour", "minute", "second"):
            check_range(getattr(self, name), 0, 255, name)

    def to_datetime(self) -> datetime | None:
        """The naive local time, or ``None`` for an impossible or "not given" field."""
        try:
            return datetime(self.year, self.month, self.day, self.hour, self.minute, self.second)
        except ValueError:
            return None

    @classmethod
    def of(cls, when: datetime) -> DateTimeS:
        """From a naive (meter-local) datetime; microseconds dropped."""
        return cls(when.year, when.month, when.day, when.hour, when.minute, when.second)


@dataclass(frozen=True, slots=True)
class DateTime:
    """date_time: year, month, day, day of week, hour, minute, second, milliseconds."""

    year: int
    month: int
    day: int
    weekday: int
    hour: int
    minute: int
    second: int
    millisecond: int = 0

    def __post_init__(self) -> None:
        check_range(self.year, 0, 0xFFFF, "year")
        check_range(self.millisecond, 0, 0xFFFF, "milliseconds")
        for name in ("month", "day", "weekday", "hour", "minute", "second"):
            check_range(getattr(self, name), 0, 255, name)

    def to_datetime(self) -> datetime | None:
        """The naive local time, or ``None``."""
        try:
            return datetime(
                self.year,
                self.month,
                self.day,
                self.hour,
                self.minute,
                self.second,
                min(self.millisecond, 999) * 1000,
            )
        except ValueError:
            return None

    @classmethod
    def of(cls, when: datetime) -> DateTime:
        """From a naive datetime (day of week: 0 = Sunday, as the standard counts)."""
        weekday = (when.weekday() + 1) % 7
        return cls(
            when.year,
            when.month,
            when.day,
            weekday,
            when.hour,
            when.minute,
            when.second,
            when.microsecond // 1000,
        )


@dataclass(frozen=True, slots=True)
class Date:
    """date: year, month, day, day of week."""

    year: int
    month: int
    day: int
    weekday: int = 0xFF

    def __post_init__(self) -> None:
        check_range(self.year, 0, 0xFFFF, "year")
        for name in ("month", "day", "weekday"):
            check_range(getattr(self, name), 0, 255, name)


@dataclass(frozen=True, slots=True)
class Time:
    """time: hour, minute, second."""

    hour: int
    minute: int
    second: int

    def __post_init__(self) -> None:
        for name in ("hour", "minute", "second"):
            check_range(getattr(self, name), 0, 255, name)


__all__ = ["TI", "Date", "DateTime", "DateTimeS", "TIUnit", "Time"]
