"""The daemon: config → store → uplink → bus workers → schedules, until SIGTERM.

::

    Gateway.run()
      ├── trust file + meter secrets file             read first: a bad one is a ConfigError
      ├── Store.open(data_dir/gateway.db)             readings and events land here first
      ├── ClockTrust                                  flags readings, gates relay/time-sync
      ├── BusWorker per [[buses]] (own thread)        every transaction of its port, heartbeat
      ├── Poller(archive)                             meters by bus, drivers, back-off, events
      ├── Uplink(...).start()                         drains the store, commands, archive
      ├── CommandExecutor (gateway.commands)          lifecycle on up/result, via DaemonOps;
      │                                               Ed25519 check ([signatures]), per-meter
      │                                               passwords ([commands] meter_secrets_file)
      ├── GatewayMetrics (+ /metrics on loopback)     the books behind the status message
      ├── schedules (jobs.py): energy / events / instant / export, load profile slots, daily frozen
      │              at 00:05 (+ once at start, a retry of failed meters an hour later),
      │              settlement values daily (+ once at start), status every status_seconds
      └── sd_notify READY=1, watchdog fed while every bus task beats, STOPPING=1

After each events sweep: relay states go to the executor (armed close-allowed commands finish),
and each bus's measured clock drifts go to the time-sync policy (``DaemonOps``).

The archive (which meters to poll) is the TOML's ``[[meters]]`` (version 0) until the head-end
pushes one over MQTT; a pushed archive is validated against the configured buses, stored
locally (so it survives a restart) and applied at once without a restart.  The uplink calls
back on the event loop; a command runs as its own task so the inbox never waits for the bus.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

from gateway.bus.link import LinkFactory, open_serial
from gateway.bus.worker import BusWorker
from gateway.clock.trust import ClockTrust, make_clock_trust
from gateway.commands import CommandExecutor, MeterSecrets
from gateway.config import GatewayConfig, MeterConfig
from gateway.config.budget import config_warnings
from gateway.config.secrets import check_trust, meter_secrets, uplink_sealer
from gateway.daemon.archive import accept_push, initial_archive, store_archive
from gateway.daemon.build import make_executor, make_uplink
from gateway.daemon.health import Health
from gateway.daemon.jobs import Schedules
from gateway.daemon.metrics import GatewayMetrics
from gateway.daemon.notify import Notifier, Watchdog, from_environment
from gateway.daemon.ops import DaemonOps
from gateway.events import EventDetector
from gateway.polling import Poller
from gateway.polling.drivers import make_driver
from gateway.polling.frozen import FrozenJobs, FrozenReader
from gateway.polling.history import HistoryReader, HistorySettings
from gateway.signature import TrustedKey, load_trust
from gateway.store.group import GroupCommit
from protocols.model import Event, EventType
from protocols.uplink import ArchivePush, Command
from taiqu.clock import Clock, make_clock

log = logging.getLogger("gateway")
STORE_FILE = "gateway.db"


class Gateway(Schedules):
    """One gateway process (see the module docstring); its schedules are ``Schedules``."""

    def __init__(
        self,
        cfg: GatewayConfig,
        *,
        config_path: Path | str = "gateway.toml",
        clock: Clock | None = None,
        link_factory: LinkFactory = open_serial,
        store: Any = None,
        uplink_factory: Callable[..., Any] | None = None,
        config_hash: str = "",
        clock_trust: ClockTrust | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        self.cfg = cfg
        self.config_path = Path(config_path)
        self.clock = clock or make_clock(cfg.clock)
        self.link_factory = link_factory
        self.store = store
        self.uplink_factory = uplink_factory
        self.config_hash = config_hash
        self.clocktrust = clock_trust or make_clock_trust(
            cfg.clock_trust_source, cfg.clock_trust.headend_tolerance_s, self.clock
        )
        self.metrics = GatewayMetrics(clock_synced=self.clocktrust.synced)
        self.notifier = notifier or Notifier()
        self.watchdog: Watchdog | None = None
        self.uplink: Any = None
        self.workers: dict[str, BusWorker] = {}
        self.poller: Poller | None = None
        self.frozen: FrozenReader | None = None
        self.frozen_jobs: FrozenJobs | None = None
        self.history: HistoryReader | None = None
        self.health: Health | None = None
        self.ops: DaemonOps | None = None
        self.executor: CommandExecutor | None = None
        self.meter_secrets = MeterSecrets()
        self.archive_keys: dict[str, TrustedKey] = {}  # the head-end's keys (trust file)
        self.metrics_port: int | None = None
        self.archive_version = 0
        self._tasks: list[asyncio.Task[Any]] = []
        self._locks: dict[str, asyncio.Lock] = {}
        self._stopping = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- life cycle ----------------------------------------------------------------------------

    def _open_store(self) -> Any:
        from gateway.store import Store

        return Store.open(
            self.cfg.data_dir / STORE_FILE,
            budget_bytes=self.cfg.store_budget_mb * 1024 * 1024,
            clock=self.clock,
        )

    def _start_workers(self) -> None:
        self.watchdog = from_environment(self.notifier)
        for bus in self.cfg.buses:
            beat = self.watchdog.register(f"bus:{bus.name}").beat if self.watchdog else None
            worker = BusWorker(
                bus.name,
                self.link_factory(bus.line),
                bus.timing,
                retries=bus.retries,
                echo=bus.echo,
                heartbeat=beat,
                on_link=partial(self._link_changed, bus.name, bus.port),
            )
            worker.start()
            self.workers[bus.name] = worker
            self.metrics.add_bus(bus.name, worker.stats.as_dict)

    def _link_changed(self, bus: str, port: str, up: bool, reason: str) -> None:
        """A bus's port went or came back (bus thread): an event stored and sent at once."""
        now = self.clock.now()
        event = Event(
            meter="",
            type=EventType.LINK_UP if up else EventType.LINK_DOWN,
            start=now,
            detected=now,
            details={"bus": bus, "port": port, "reason": reason[:200]},
        )
        loop = self._loop
        if loop is not None and self.store is not None:
            loop.call_soon_threadsafe(self.store.append_events, [event])

    def _check_command_files(self) -> MeterSecrets:
        """The trust file, the uplink signing key and the meter secrets, before anything is
        opened (``ConfigError``)."""
        check_trust(self.cfg, self.config_path)
        uplink_sealer(self.cfg, self.config_path)
        return meter_secrets(self.cfg, self.config_path)

    async def start(self) -> None:
        """Open everything and start the schedules."""
        self._loop = asyncio.get_running_loop()
        self._locks = {
            name: asyncio.Lock()
            for name in ("energy", "events", "instant", "export", "load_profile", "settlement")
        }
        self.meter_secrets = self._check_command_files()
        trust = self.cfg.signatures.trust_file
        self.archive_keys = load_trust(trust) if trust is not None else {}
        if self.store is None:
            self.store = self._open_store()
        self._start_workers()
        ts = self.cfg.time_sync
        self.poller = Poller(
            self.workers,
            self.clock,
            self.store,
            partial(make_driver, frozen_export=self.cfg.schedule.frozen_export),
            zone=self.cfg.zone,
            state=self.store,
            flags=self.clocktrust.flags,
            clock_synced=self.clocktrust.synced,
            detector=EventDetector(
                ts.drift_event_s,
                ts.max_drift_s,
                first_contact_window=timedelta(days=self.cfg.schedule.backfill_days),
            ),
            batches=lambda bus: GroupCommit(self.store, self.cfg.store_group_seconds),
        )
        self.frozen = FrozenReader(self.poller, self.store)
        self.frozen_jobs = FrozenJobs(
            self.frozen, self.cfg.schedule.backfill_days, self.clock, self.metrics.collection
        )
        s = self.cfg.schedule
        self.history = HistoryReader(
            self.poller,
            self.cfg.zone,
            HistorySettings(
                s.load_profile_interval_min,
                s.load_profile_categories,
                s.load_profile_backfill_hours,
                s.settlement_day,
                s.settlement_hour,
            ),
        )
        self.health = Health(self.poller, self.metrics, self.clocktrust.synced)
        self.poller.set_meters(self._initial_archive())
        for warning in config_warnings(self.cfg, where=str(self.config_path)):
            log.warning("%s", warning)
        self.health.archive_version = self.archive_version
        self.ops = DaemonOps(
            self.cfg, self.poller, self.frozen, self.store, self.clock, self.clocktrust.synced
        )
        self.uplink = make_uplink(self)
        self.executor = make_executor(self)
        await self.uplink.start()
        self._serve_metrics()
        self._schedule()
        summary = (
            f"polling {len(self.poller.meters)} meters on {len(self.workers)} buses "
            f"(archive version {self.archive_version})"
        )
        log.info("gateway %s %s", self.cfg.gateway_id, summary)
        self.notifier.ready(summary)

    def _serve_metrics(self) -> None:
        port = self.cfg.health.metrics_port
        if not port:
            return
        try:
            self.metrics_port = self.metrics.serve(port)
        except OSError as exc:  # e.g. the previous instance still holds it: run without
            log.error("metrics not served on 127.0.0.1:%d: %s", port, exc)
            return
        log.info("metrics on http://127.0.0.1:%d/metrics", self.metrics_port)

    async def stop(self) -> None:
        """Stop schedules, workers, the uplink and the store, in that order."""
        self.notifier.stopping()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        for worker in self.workers.values():
            await worker.stop()
        if self.uplink is not None:
            await self.uplink.stop()
        self.metrics.stop()
        if self.store is not None:
            self.store.close()
        self.notifier.close()
        log.info("gateway %s stopped", self.cfg.gateway_id)

    def toggle_trace(self) -> None:
        """Switch every bus's frame trace on or off (``kill -USR1``; no restart)."""
        for worker in self.workers.values():
            worker.trace.toggle()

    def request_stop(self) -> None:
        """Ask ``run`` to return (signal handlers call this)."""
        self._stopping.set()

    async def run(self) -> None:
        """Start, wait for SIGTERM/SIGINT (or ``request_stop``), stop."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, self.request_stop)
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGUSR1, self.toggle_trace)
        try:
            await self.start()
            await self._stopping.wait()
        finally:
            await self.stop()

    # -- archive (gateway.daemon.archive) -----------------------------------------------------

    def _initial_archive(self) -> list[MeterConfig]:
        self.archive_version, meters = initial_archive(self.cfg, self.store)
        return meters

    def apply_archive(self, push: ArchivePush) -> bool:
        """Validate, store and apply a pushed archive; False (logged) if refused."""
        assert self.poller is not None and self.health is not None
        meters = accept_push(self.cfg, push, self.archive_version, self.archive_keys)
        if meters is None:
            return False
        store_archive(self.store, push.version, meters)
        for gone in set(self.poller.meters) - {m.id for m in meters}:
            self.metrics.forget_meter(gone)
        self.poller.set_meters(meters)
        self.archive_version = self.health.archive_version = push.version
        log.info("archive version %d applied: %d meters", push.version, len(meters))
        self.publish_status()
        return True

    # -- commands ------------------------------------------------------------------------------

    def _on_archive(self, push: ArchivePush) -> bool:
        # an archive push is not signed: its issued time is not head-end time (build.make_verifier)
        return self.apply_archive(push)

    def _spawn_command(self, command: Command) -> None:
        task = asyncio.get_running_loop().create_task(self.execute(command))
        self._tasks.append(task)
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[Any]) -> None:
        if task in self._tasks:
            self._tasks.remove(task)

    async def execute(self, command: Command) -> Any:
        """Run a head-end command through its lifecycle (``gateway.commands``)."""
        assert self.executor is not None
        return await self.executor.handle(command)
