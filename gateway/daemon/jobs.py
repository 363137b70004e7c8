"""The daemon's schedules: which sweeps run when, their jobs and their books (metrics, health).

``Gateway`` (``gateway.daemon.app``) inherits these; tests call the jobs directly
(``await gw.energy_job()``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from gateway.bus.worker import BusWorker, Priority
from gateway.commands import CommandExecutor
from gateway.config import GatewayConfig
from gateway.daemon.health import Health
from gateway.daemon.metrics import GatewayMetrics
from gateway.daemon.notify import Notifier, Watchdog
from gateway.daemon.ops import DaemonOps
from gateway.polling import Group, Poller, SweepReport
from gateway.polling.frozen import FrozenJobs
from gateway.polling.history import HistoryReader, HistoryReport
from gateway.polling.schedule import run_daily, run_every
from taiqu.clock import Clock

if TYPE_CHECKING:
    from gateway.daemon.search import SearchRun

log = logging.getLogger("gateway")


class Schedules:
    """The schedule half of ``Gateway``: the attributes below are set by ``Gateway``."""

    cfg: GatewayConfig
    clock: Clock
    store: Any
    uplink: Any
    metrics: GatewayMetrics
    notifier: Notifier
    watchdog: Watchdog | None
    workers: dict[str, BusWorker]
    poller: Poller | None
    frozen_jobs: FrozenJobs | None
    history: HistoryReader | None
    health: Health | None
    ops: DaemonOps | None
    executor: CommandExecutor | None
    _tasks: list[asyncio.Task[Any]]
    _locks: dict[str, asyncio.Lock]

    def _schedule(self) -> None:
        s, zone, clock = self.cfg.schedule, self.cfg.zone, self.clock

        def spawn(coro: Any, name: str) -> None:
            self._tasks.append(asyncio.get_running_loop().create_task(coro, name=name))

        spawn(run_every(clock, "energy", s.energy_minutes, zone, self.energy_job), "energy")
        if s.events_minutes:
            spawn(run_every(clock, "events", s.events_minutes, zone, self.events_job), "events")
        if s.instant_minutes:
            spawn(run_every(clock, "instant", s.instant_minutes, zone, self.instant_job), "instant")
        if s.export_minutes:
            spawn(run_every(clock, "export", s.export_minutes, zone, self.export_job), "export")
        if s.load_profile_minutes:
            every = s.load_profile_minutes
            spawn(run_every(clock, "load_profile", every, zone, self.load_profile_job), "profile")
        if s.settlement_periods:
            at = s.settlement_at
            spawn(run_daily(clock, "settlement", at, zone, self.settlement_job), "settlement")
            spawn(self.settlement_job(), "settlement-catch-up")
        assert self.frozen_jobs is not None
        spawn(run_daily(clock, "frozen", s.daily_frozen_at, zone, self.frozen_jobs.daily), "frozen")
        spawn(self.frozen_jobs.catch_up(), "frozen-catch-up")
        spawn(self._status_loop(), "status")
        if self.cfg.search.enabled:
            spawn(run_daily(clock, "search", self.cfg.search.at, zone, self.search_job), "search")
        if self.watchdog is not None:
            spawn(self.watchdog.run(), "watchdog")

    def _books(self, schedule: str, report: SweepReport) -> None:
        assert self.health is not None
        self.health.sweep_done(report)
        for visit in report.visits:
            if visit.ok:
                self.metrics.meter_ok(visit.meter, report.started)
            else:
                self.metrics.meter_failed(visit.meter)
        self.metrics.collection(schedule, "first_sweep", report.due, report.read, report.started)
        log.debug("%s sweep: %s", report.group, report)

    async def energy_job(self, slot: Any = None) -> SweepReport:
        """The energy sweep (the schedule's job; tests call it directly)."""
        assert self.poller is not None
        async with self._locks["energy"]:
            report = await self.poller.sweep(Group.ENERGY, Priority.ENERGY)
            self._books("energy", report)
        return report

    async def events_job(self, slot: Any = None) -> SweepReport:
        """The events sweep, then armed commands and the scheduled time sync."""
        assert self.poller is not None and self.executor is not None and self.ops is not None
        async with self._locks["events"]:
            report = await self.poller.sweep(Group.EVENTS, Priority.SCHEDULED)
            self._books("events", report)
            for visit in report.visits:
                relay = visit.values.get("relay.state")
                if isinstance(relay, str):
                    self.executor.observe_relay(visit.meter, relay)
            if self.cfg.time_sync.enabled:
                await self.ops.time_sync_after_sweep(report)
        return report

    async def export_job(self, slot: Any = None) -> SweepReport:
        """The reverse (export) energy sweep of areas with rooftop PV."""
        assert self.poller is not None
        async with self._locks["export"]:
            report = await self.poller.sweep(Group.EXPORT, Priority.ENERGY)
            self._books("export", report)
        return report

    async def instant_job(self, slot: Any = None) -> SweepReport:
        """The instantaneous values sweep."""
        assert self.poller is not None
        async with self._locks["instant"]:
            report = await self.poller.sweep(Group.INSTANT, Priority.SCHEDULED)
            self._books("instant", report)
        return report

    def _history_books(self, report: HistoryReport) -> None:
        assert self.health is not None
        self.health.history[report.group] = report.summary()
        collected = len(report.collected)
        self.metrics.collection(report.group, "first_sweep", report.due, collected, report.at)
        log.info("%s: %d records stored; %d of %d meters collected, %d refused, %d unsupported",
                 report.group, sum(report.stored.values()), collected, report.due,
                 len(report.refused), len(report.unsupported))  # fmt: skip

    async def load_profile_job(self, slot: Any = None) -> HistoryReport:
        """The load records stored since the last run (``gateway.polling.history``)."""
        assert self.history is not None
        async with self._locks["load_profile"]:
            report = await self.history.load_profile(Priority.SCHEDULED)
            self._history_books(report)
        return report

    async def settlement_job(self, slot: Any = None) -> HistoryReport:
        """The settlement periods not stored yet (daily, and once at start)."""
        assert self.history is not None
        async with self._locks["settlement"]:
            periods = self.cfg.schedule.settlement_periods
            report = await self.history.settlements(periods, Priority.BACKFILL)
            self._history_books(report)
        return report

    async def search_job(self, slot: Any = None) -> list[SearchRun]:
        """The nightly search for unknown meters on every bus (``gateway.daemon.search``, opt-in:
        imported when it first runs)."""
        from gateway.daemon.search import search_all

        assert self.poller is not None
        meters = [mp.meter for mp in self.poller.meters.values()]
        return await search_all(self.workers, meters, self.cfg.search, self.clock, self.store)

    async def _status_loop(self) -> None:
        while True:
            await asyncio.sleep(self.cfg.health.status_seconds)  # wall time: process health
            self.publish_status()

    def publish_status(self) -> None:
        """Send the health snapshot with the status message (and a systemd status line)."""
        if self.uplink is None or self.health is None:
            return
        stats = None
        with contextlib.suppress(Exception):
            stats = self.store.stats()
        if self.frozen_jobs is not None:
            self.health.frozen = dict(self.frozen_jobs.last)
        snapshot = self.health.snapshot(stats)
        self.notifier.status(
            f"{snapshot.get('meters', 0)} meters, {snapshot.get('failing_count', 0)} failing, "
            f"clock {'synced' if snapshot.get('clock_synced') else 'UNSYNCED'}, "
            f"uplink {'up' if getattr(self.uplink, 'connected', False) else 'down'}"
        )
        try:
            self.uplink.publish_status(snapshot)
        except Exception as exc:  # the uplink may be between connections
            log.debug("status not published: %s", exc)
