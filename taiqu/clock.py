"""One clock for every Taiqu process.

A clock setting is either ``"real"`` or an accelerated clock ``{start, factor, anchor}``::

    simulated = start + (wall - anchor) × factor        (anchor defaults to start)

It is derived purely from the wall clock, so separate processes (simulators, gateways, the
head-end) given the same setting agree on simulated time without talking to each other.  The demo
and the tests run a simulated day in minutes this way.  Sleeping for simulated seconds sleeps
``seconds / factor`` of wall time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

WallFn = Callable[[], float]


class Clock(Protocol):
    """What every process asks of its clock."""

    def now(self) -> datetime:
        """The current (possibly simulated) time, timezone-aware, in UTC."""
        ...

    def wall_seconds(self, seconds: float) -> float:
        """How many wall-clock seconds ``seconds`` of clock time take."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Sleep for ``seconds`` of clock time."""
        ...


@dataclass(frozen=True)
class RealClock:
    """The system's wall clock."""

    wall: WallFn = time.time

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.wall(), UTC)

    def wall_seconds(self, seconds: float) -> float:
        return seconds

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


@dataclass(frozen=True)
class AcceleratedClock:
    """``start + (wall − anchor) × factor``: pure in the wall clock, shared across processes."""

    start: datetime
    factor: float
    anchor: datetime | None = None
    wall: WallFn = time.time

    def __post_init__(self) -> None:
        if self.start.tzinfo is None:
            raise ValueError("clock start must be timezone-aware")
        if self.factor <= 0:
            raise ValueError("clock factor must be positive")

    def now(self) -> datetime:
        anchor = (self.anchor or self.start).timestamp()
        elapsed = (self.wall() - anchor) * self.factor
        return (self.start + timedelta(seconds=elapsed)).astimezone(UTC)

    def wall_seconds(self, seconds: float) -> float:
        return seconds / self.factor

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, self.wall_seconds(seconds)))


@dataclass
class ManualClock:
    """A clock that moves only when told to (unit tests); ``sleep`` advances it."""

    current: datetime = field(default_factory=lambda: datetime(2026, 1, 1, tzinfo=UTC))

    def now(self) -> datetime:
        return self.current.astimezone(UTC)

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)

    def wall_seconds(self, seconds: float) -> float:
        return 0.0

    async def sleep(self, seconds: float) -> None:
        self.advance(seconds)
        await asyncio.sleep(0)


class AcceleratedSetting(BaseModel):
    """``clock = { start = 2026-01-01T00:00:00+08:00, factor = 60 }`` in a TOML file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: datetime
    factor: float = Field(gt=0, le=1_000_000)
    anchor: datetime | None = None

    @field_validator("start", "anchor")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("must carry a UTC offset, e.g. 2026-01-01T00:00:00+08:00")
        return value


ClockSetting = Literal["real"] | AcceleratedSetting


def make_clock(setting: ClockSetting | dict[str, Any] | str | None = "real") -> Clock:
    """Build the clock a setting describes (``None`` and ``"real"`` mean the wall clock)."""
    if setting is None or setting == "real":
        return RealClock()
    if isinstance(setting, str):
        raise ValueError(f"clock must be 'real' or {{start = …, factor = N}}, not {setting!r}")
    parsed = setting if isinstance(setting, AcceleratedSetting) else AcceleratedSetting(**setting)
    return AcceleratedClock(parsed.start, parsed.factor, parsed.anchor)


def setting_to_toml(setting: ClockSetting) -> str:
    """The TOML value of a setting, for configuration files written by tools (demo, sim)."""
    if setting == "real":
        return '"real"'
    assert isinstance(setting, AcceleratedSetting)
    parts = [f"start = {setting.start.isoformat()}", f"factor = {setting.factor:g}"]
    if setting.anchor is not None:
        parts.append(f"anchor = {setting.anchor.isoformat()}")
    return "{ " + ", ".join(parts) + " }"
