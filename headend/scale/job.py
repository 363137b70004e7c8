"""The storage maintenance job: ``[scale]`` settings, a periodic loop, and a one-shot command.

``[scale]`` in ``headend.toml``::

    [scale]
    partitions_ahead = 3          # monthly readings partitions kept created ahead
    keep_raw_months = 24          # drop raw months older than this once aggregated; 0 keeps all
    aggregate_lookback_days = 7   # days re-aggregated each run (late readings merge in)
    zone = "Asia/Shanghai"        # the days of reading_daily are this zone's dates
    interval_minutes = 60         # how often the job runs inside ``serve``
    job = true

Every run is ``headend.db.scale.maintain`` under its advisory lock, so each head-end instance
may run the loop.  One-shot (cron or a systemd timer): ``taiqu headend maintain --config CONFIG``
or ``python -m headend.scale.job CONFIG`` (exit 0 done, 2 bad configuration, 1 the database
refused, with the reason), on the head-end's clock (the top-level ``clock`` of headend.toml).
"""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import Engine

from headend.db.errors import ConfigError, HeadendError
from headend.db.scale import MaintenanceReport, maintain
from taiqu.clock import Clock

if TYPE_CHECKING:
    from headend.config import Settings

log = logging.getLogger(__name__)


class ScaleSettings(BaseModel):
    """``[scale]``: partitions, retention and daily aggregates (PostgreSQL)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    partitions_ahead: int = Field(default=3, ge=1, le=60)
    keep_raw_months: int = Field(default=0, ge=0, le=600)  # 0: keep every raw reading
    aggregate_lookback_days: int = Field(default=7, ge=1, le=366)
    zone: str = "UTC"
    interval_minutes: float = Field(default=60, gt=0, le=24 * 60)
    job: bool = True

    @field_validator("zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}, e.g. Asia/Shanghai") from None
        return value


def scale_settings(extra: dict[str, Any], source: Path | None = None) -> ScaleSettings:
    """Parse ``[scale]``; a bad value raises ``ConfigError`` naming the key."""
    try:
        return ScaleSettings(**extra.get("scale", {}))
    except ValidationError as exc:
        where = f"{source}: " if source else ""
        lines = [
            f"{where}scale.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        ]
        raise ConfigError("\n".join(lines)) from None


def run_once(engine: Engine, settings: ScaleSettings, clock: Clock) -> MaintenanceReport:
    """One maintenance pass at the clock's now."""
    return maintain(
        engine,
        clock.now(),
        ahead=settings.partitions_ahead,
        keep_months=settings.keep_raw_months or None,
        aggregate_lookback_days=settings.aggregate_lookback_days,
        tz=settings.zone,
    )


class MaintenanceJob:
    """Runs ``run_once`` every ``interval_minutes`` on ``clock`` (errors logged, never fatal)."""

    def __init__(self, engine: Engine, settings: ScaleSettings, clock: Clock) -> None:
        self.engine, self.settings, self.clock = engine, settings, clock
        self.task: asyncio.Task[None] | None = None
        self.runs = 0

    async def _loop(self) -> None:
        while True:
            try:
                report = await asyncio.to_thread(run_once, self.engine, self.settings, self.clock)
                self.runs += 1
                if report.created or report.dropped:
                    log.info("partitions created %s, dropped %s", report.created, report.dropped)
            except Exception:
                log.exception("storage maintenance failed; retrying next interval")
            await self.clock.sleep(self.settings.interval_minutes * 60)

    def start(self) -> None:
        """Start the loop as a task of the running event loop (no-op on SQLite)."""
        if self.task is None and self.engine.dialect.name == "postgresql":
            self.task = asyncio.get_running_loop().create_task(self._loop(), name="scale-job")

    async def stop(self) -> None:
        """Cancel the loop and wait for it."""
        if self.task is not None:
            self.task.cancel()
            try:
                await self.task
            except asyncio.CancelledError:
                pass
            self.task = None


def one_shot(settings: Settings) -> int:
    """One maintenance pass on the head-end's clock; the exit status (0, 1 or 2), printed result."""
    from headend.config import clock_of
    from headend.db import make_engine

    try:
        scale = scale_settings(settings.extra, settings.source)
        clock = clock_of(settings)
    except ConfigError as exc:
        print(f"scale job: {exc}", file=sys.stderr)
        return 2
    engine = make_engine(settings.database)
    try:
        report = run_once(engine, scale, clock)
    except HeadendError as exc:
        print(f"scale job: {exc}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    print(
        f"partitions created: {[m.isoformat() for m in report.created]}; "
        f"aggregate rows merged: {report.aggregated}; "
        f"dropped: {[m.isoformat() for m in report.dropped]}"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m headend.scale.job CONFIG`` (= ``taiqu headend maintain``): one pass."""
    from headend.config import load_settings

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m headend.scale.job CONFIG", file=sys.stderr)
        return 2
    try:
        settings = load_settings(args[0])
    except ConfigError as exc:
        print(f"scale job: {exc}", file=sys.stderr)
        return 2
    return one_shot(settings)


if __name__ == "__main__":
    sys.exit(main())
