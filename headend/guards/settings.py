"""Configuration of the disconnect guard rails (the ``[guards]`` table of the head-end's TOML)."""

from __future__ import annotations

from datetime import time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class GuardSettings(BaseModel):
    """When and how much the head-end may disconnect.

    The window is in the utility's local zone: disconnects start no earlier than ``window_start``
    and no later than ``window_end`` on ``weekdays`` (ISO numbers, Monday = 1) that are not public
    holidays of ``holiday_country`` (``holidays`` package codes, optionally a subdivision).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    timezone: str = "Asia/Shanghai"
    window_start: time = time(8, 0)
    window_end: time = time(17, 0)
    weekdays: frozenset[int] = frozenset({1, 2, 3, 4, 5})
    holiday_country: str | None = "CN"
    holiday_subdivision: str | None = None
    supervisor_threshold: int = Field(default=10, ge=1)  # more meters than this: approval
    # … counted per operator over this rolling window: their disconnects that went ahead
    # without a supervisor plus the one asked for (splitting a request does not avoid approval)
    supervisor_window_minutes: int = Field(default=60, ge=0, le=7 * 24 * 60)
    hourly_limit_area: int = Field(default=50, ge=0)  # meters tripped per area per hour
    hourly_limit_fleet: int = Field(default=200, ge=0)  # meters tripped per hour, all areas

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r} (use an IANA name such as Asia/Shanghai)"
            ) from None
        return value

    @field_validator("weekdays")
    @classmethod
    def _weekdays(cls, value: frozenset[int]) -> frozenset[int]:
        bad = sorted(d for d in value if not 1 <= d <= 7)
        if bad:
            raise ValueError(f"weekdays are ISO numbers 1 (Monday) … 7 (Sunday), not {bad}")
        return value

    @field_validator("holiday_country")
    @classmethod
    def _country(cls, value: str | None) -> str | None:
        if value is not None and value not in holidays.list_supported_countries():
            raise ValueError(
                f"holiday_country {value!r} is not a country the holidays package knows"
            )
        return value

    @model_validator(mode="after")
    def _window(self) -> GuardSettings:
        if self.window_start >= self.window_end:
            raise ValueError("window_start must be before window_end (a day-time window)")
        if self.holiday_subdivision and self.holiday_country:
            subdivisions = holidays.list_supported_countries().get(self.holiday_country, [])
            if self.holiday_subdivision not in subdivisions:
                raise ValueError(
                    f"holiday_subdivision {self.holiday_subdivision!r} is not one of "
                    f"{self.holiday_country}'s: {subdivisions}"
                )
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)
