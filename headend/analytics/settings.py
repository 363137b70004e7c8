"""``[analytics]`` in headend.toml: zone, targets, thresholds and the daily job's schedule."""

from __future__ import annotations

from datetime import time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from headend.db.errors import ConfigError
from protocols.model import DEFAULT_METER_ZONE


class AnalyticsSettings(BaseModel):
    """How the analytics compute and when the daily job runs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    zone: str = DEFAULT_METER_ZONE  # the meters' zone: days are its dates
    # the default acceptable band of the loss rate (合格区间) of an area without its own
    default_target: Decimal = Field(default=Decimal("0.08"), ge=0, le=1)  # upper bound
    default_band_low: Decimal = Field(default=Decimal(0), ge=0, le=1)  # lower bound
    sudden_change: Decimal = Field(default=Decimal("0.03"), gt=0, le=1)
    interpolation_max_gap_minutes: int = Field(default=120, ge=1, le=24 * 60)
    max_kwh_per_day: Decimal = Field(default=Decimal(1500), gt=0)  # register units, per meter
    suspect_days: int = Field(default=14, ge=3, le=62)
    failing_window: int = Field(default=7, ge=1, le=62)
    failing_min_missing: int = Field(default=2, ge=1, le=62)
    stopped_days: int = Field(default=3, ge=1, le=62)
    # 采集成功率: a freeze counts as collected when stored within this many hours of the freeze
    collection_cutoff_hours: float = Field(default=24.0, gt=0, le=24 * 31)
    profile_days: int = Field(default=7, ge=1, le=31)  # interval data the suspects read
    vacancy_history_days: int = Field(default=400, ge=0, le=800)  # own history for seasonality
    interval_minutes: int = Field(default=15, ge=1, le=240)  # the gateways' interval step
    # per-meter daily aggregates of complete days (analytics_interval_days) instead of re-reading
    # their raw interval readings on every recompute; off: always from the raw readings
    interval_aggregates: bool = True
    job: bool = True
    run_at: time = time(1, 30)  # local time in ``zone`` (after the gateways' 00:05 freeze read)
    lookback_days: int = Field(default=3, ge=0, le=62)  # recompute for late back-fill
    start_delay_s: float = Field(default=60.0, ge=0)  # then catch up a missed run

    @model_validator(mode="after")
    def _band(self) -> AnalyticsSettings:
        if self.default_band_low > self.default_target:
            raise ValueError("default_band_low must not be above default_target")
        return self

    @field_validator("zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}, e.g. Asia/Shanghai") from None
        return value

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.zone)

    @property
    def collection_cutoff(self) -> timedelta:
        return timedelta(hours=self.collection_cutoff_hours)

    @property
    def max_gap(self) -> timedelta:
        return timedelta(minutes=self.interpolation_max_gap_minutes)


def analytics_settings(extra: dict[str, Any], source: Path | None = None) -> AnalyticsSettings:
    """Parse ``[analytics]``; a bad value raises ``ConfigError`` naming the key."""
    try:
        return AnalyticsSettings(**extra.get("analytics", {}))
    except ValidationError as exc:
        where = f"{source}: " if source else ""
        lines = [
            f"{where}analytics.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
            for e in exc.errors()
        ]
        raise ConfigError("\n".join(lines)) from None
