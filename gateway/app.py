"""The daemon: config → store → uplink → bus workers → schedules, until SIGTERM.

::

    Gateway.run()
      ├── Store.open(data_dir/gateway.db)             readings and events land here first
      ├── BusWorker per [[buses]] (own thread)        every transaction of its port
      ├── Poller(archive)                             meters by bus, drivers, back-off
      ├── Uplink(...).start()                         drains the store, commands, archive
      └── schedules: energy / events / instant slots, daily frozen at 00:05 (+ once at start),
                     status every minute

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
from datetime import date
from pathlib import Path
from typing import Any

from gateway.bus.timing import LineTiming
from gateway.bus.worker import BusWorker, Priority
from gateway.config import GatewayConfig, MeterConfig, check_meters, resolve_secrets
from gateway.frozen import FrozenReader
from gateway.health import Health
from gateway.link import LinkFactory, LinkSettings, open_serial
from gateway.poller import Group, MeterUnavailable, Poller
from gateway.poller_drivers import make_driver
from gateway.schedule import run_daily, run_every
from protocols.uplink import ArchivePush, Command, CommandAction, CommandResult, CommandState
from taiqu.clock import Clock, make_clock

log = logging.getLogger("gateway")
ARCHIVE_KEY = "archive"
STATUS_SECONDS = 60.0
STORE_FILE = "gateway.db"


def software_version() -> str:
    """The installed taiqu version."""
    try:
        from importlib.metadata import version

        return version("taiqu")
    except Exception:
        return "0+unknown"


class Gateway:
    """One gateway process (see the module docstring)."""

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
    ) -> None:
        self.cfg = cfg
        self.config_path = Path(config_path)
        self.clock = clock or make_clock(cfg.clock)
        self.link_factory = link_factory
        self.store = store
        self.uplink_factory = uplink_factory
        self.config_hash = config_hash
        self.uplink: Any = None
        self.workers: dict[str, BusWorker] = {}
        self.poller: Poller | None = None
        self.frozen: FrozenReader | None = None
        self.health: Health | None = None
        self.archive_version = 0
        self._tasks: list[asyncio.Task[Any]] = []
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

    def _make_uplink(self) -> Any:
        if self.uplink_factory is not None:
            factory = self.uplink_factory
        else:
            from gateway.uplink import Uplink

            factory = Uplink
        secrets = resolve_secrets(self.cfg, self.config_path)
        from gateway.uplink.settings import BrokerSettings

        b = self.cfg.broker
        broker = BrokerSettings(
            host=b.host,
            port=b.port,
            keepalive=b.keepalive,
            ca_file=b.ca_file,
            cert_file=b.cert_file,
            key_file=b.key_file,
            username=secrets.username,
            password=secrets.password,
        )
        return factory(
            self.cfg.gateway_id,
            broker,
            self.store,
            self.clock,
            software_version=software_version(),
            config_hash=self.config_hash,
            archive_version_fn=lambda: self.archive_version,
            on_command=self._spawn_command,
            on_archive=self.apply_archive,
        )

    async def start(self) -> None:
        """Open everything and start the schedules."""
        self._loop = asyncio.get_running_loop()
        if self.store is None:
            self.store = self._open_store()
        for bus in self.cfg.buses:
            settings = LinkSettings(
                bus.port, bus.baud, bus.parity, bus.bytesize, bus.stopbits, bus.rs485
            )
            worker = BusWorker(
                bus.name,
                self.link_factory(settings),
                LineTiming.of(bus),
                retries=bus.retries,
                echo=bus.echo,
            )
            worker.start()
            self.workers[bus.name] = worker
        self.poller = Poller(
            self.workers, self.clock, self.store, make_driver, zone=self.cfg.zone, state=self.store
        )
        self.frozen = FrozenReader(self.poller, self.store)
        self.health = Health(self.poller)
        self.poller.set_meters(self._initial_archive())
        self.health.archive_version = self.archive_version
        self.uplink = self._make_uplink()
        await self.uplink.start()
        self._schedule()
        log.info(
            "gateway %s polling %d meters on %d buses (archive version %d)",
            self.cfg.gateway_id,
            len(self.poller.meters),
            len(self.workers),
            self.archive_version,
        )

    def _schedule(self) -> None:
        s, zone, clock = self.cfg.schedule, self.cfg.zone, self.clock

        def spawn(coro: Any, name: str) -> None:
            self._tasks.append(asyncio.get_running_loop().create_task(coro, name=name))

        spawn(run_every(clock, "energy", s.energy_minutes, zone, self._energy), "energy")
        if s.events_minutes:
            spawn(run_every(clock, "events", s.events_minutes, zone, self._events), "events")
        if s.instant_minutes:
            spawn(run_every(clock, "instant", s.instant_minutes, zone, self._instant), "instant")
        spawn(run_daily(clock, "frozen", s.daily_frozen_at, zone, self._daily_frozen), "frozen")
        spawn(self._frozen_catch_up(), "frozen-catch-up")
        spawn(self._status_loop(), "status")

    async def stop(self) -> None:
        """Stop schedules, workers, the uplink and the store, in that order."""
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
        if self.store is not None:
            self.store.close()
        log.info("gateway %s stopped", self.cfg.gateway_id)

    def request_stop(self) -> None:
        """Ask ``run`` to return (signal handlers call this)."""
        self._stopping.set()

    async def run(self) -> None:
        """Start, wait for SIGTERM/SIGINT (or ``request_stop``), stop."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, self.request_stop)
        try:
            await self.start()
            await self._stopping.wait()
        finally:
            await self.stop()

    # -- schedules -----------------------------------------------------------------------------

    def _done(self, report: Any) -> None:
        assert self.health is not None
        self.health.sweep_done(report)
        log.debug("%s sweep: %s", report.group, report)

    async def _energy(self, slot: Any) -> None:
        assert self.poller is not None
        self._done(await self.poller.sweep(Group.ENERGY, Priority.ENERGY))

    async def _events(self, slot: Any) -> None:
        assert self.poller is not None
        self._done(await self.poller.sweep(Group.EVENTS, Priority.SCHEDULED))

    async def _instant(self, slot: Any) -> None:
        assert self.poller is not None
        self._done(await self.poller.sweep(Group.INSTANT, Priority.SCHEDULED))

    async def _daily_frozen(self, slot: Any) -> None:
        assert self.frozen is not None and self.health is not None
        report = await self.frozen.run(self.cfg.schedule.backfill_days)
        self.health.frozen = {
            "at": self.clock.now().isoformat(),
            "stored": report.days_stored,
            "failed": report.failed[:50],
        }
        log.info(
            "daily frozen: %d meter-days stored, %d meters failed",
            report.days_stored,
            len(report.failed),
        )

    async def _frozen_catch_up(self) -> None:
        """At start, read the freezes missed while the gateway was down (idle-bus priority)."""
        assert self.frozen is not None
        report = await self.frozen.run(self.cfg.schedule.backfill_days, priority=Priority.BACKFILL)
        if report.days_stored:
            log.info("frozen catch-up: %d meter-days stored", report.days_stored)

    async def _status_loop(self) -> None:
        while True:
            await self.clock.sleep(STATUS_SECONDS)
            self.publish_status()

    def publish_status(self) -> None:
        """Send the health snapshot with the status message."""
        if self.uplink is None or self.health is None:
            return
        stats = None
        with contextlib.suppress(Exception):
            stats = self.store.stats()
        try:
            self.uplink.publish_status(self.health.snapshot(stats))
        except Exception as exc:  # the uplink may be between connections
            log.debug("status not published: %s", exc)

    # -- archive -------------------------------------------------------------------------------

    def _initial_archive(self) -> list[MeterConfig]:
        stored = self.store.get_state(ARCHIVE_KEY) if self.store is not None else None
        if isinstance(stored, dict) and stored.get("meters") is not None:
            try:
                meters = [MeterConfig.model_validate(m) for m in stored["meters"]]
                self.archive_version = int(stored.get("version", 0))
                log.info("using the pushed archive version %d", self.archive_version)
                return meters
            except Exception as exc:
                log.error("the stored archive is unusable (%s); using the TOML's meters", exc)
        self.archive_version = 0
        return list(self.cfg.meters)

    def apply_archive(self, push: ArchivePush) -> bool:
        """Validate, store and apply a pushed archive; False (logged) if refused."""
        assert self.poller is not None and self.health is not None
        if push.gateway != self.cfg.gateway_id:
            log.error("archive for gateway %r ignored", push.gateway)
            return False
        if push.version <= self.archive_version and self.archive_version:
            log.info("archive version %d is not newer than %d", push.version, self.archive_version)
            return False
        try:
            meters = [MeterConfig.from_archive(m) for m in push.meters]
        except Exception as exc:
            log.error("archive version %d refused: %s", push.version, exc)
            return False
        problems = check_meters(self.cfg, meters, where=f"archive v{push.version}")
        if problems:
            log.error("archive version %d refused: %s", push.version, "; ".join(problems))
            return False
        self.store.set_state(
            ARCHIVE_KEY,
            {"version": push.version, "meters": [m.model_dump(mode="json") for m in meters]},
        )
        self.poller.set_meters(meters)
        self.archive_version = self.health.archive_version = push.version
        log.info("archive version %d applied: %d meters", push.version, len(meters))
        self.publish_status()
        return True

    # -- commands ------------------------------------------------------------------------------

    def _spawn_command(self, command: Command) -> None:
        task = asyncio.get_running_loop().create_task(self.execute(command))
        self._tasks.append(task)
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[Any]) -> None:
        if task in self._tasks:
            self._tasks.remove(task)

    def _result(self, command: Command, state: CommandState, **kw: Any) -> None:
        result = CommandResult(
            id=command.id, gateway=self.cfg.gateway_id, state=state, at=self.clock.now(), **kw
        )
        if self.uplink is not None:
            try:
                self.uplink.publish_result(result)
            except Exception as exc:
                log.warning("result of %s not published: %s", command.id, exc)

    async def execute(self, command: Command) -> CommandState:
        """Run a read or back-fill command; other actions belong to later milestones."""
        assert self.poller is not None and self.frozen is not None
        if command.expired(self.clock.now()):
            self._result(command, CommandState.EXPIRED)
            return CommandState.EXPIRED
        self._result(command, CommandState.EXECUTING)
        meters = list(command.meters) if command.meters else list(self.poller.meters)
        if command.action is CommandAction.READ:
            quantities = command.params.get("quantities") or None
            failed = 0
            for meter in meters:
                try:
                    readings = await self.poller.read_now(meter, quantities)
                except (MeterUnavailable, KeyError) as exc:
                    failed += 1
                    self._result(
                        command, CommandState.FAILED, meter=meter, reason=str(exc) or "unknown"
                    )
                    continue
                self._result(
                    command, CommandState.EXECUTED, meter=meter, detail={"readings": len(readings)}
                )
            return CommandState.FAILED if failed == len(meters) else CommandState.EXECUTED
        if command.action is CommandAction.BACKFILL:
            try:
                since = date.fromisoformat(str(command.params["from"]))
                until = date.fromisoformat(str(command.params.get("to", since)))
            except (KeyError, ValueError) as exc:
                self._result(command, CommandState.REFUSED, reason=f"params: {exc}")
                return CommandState.REFUSED
            report = await self.frozen.run(
                62, since=since, until=until, meters=meters, priority=Priority.ON_DEMAND
            )
            state = CommandState.FAILED if report.failed else CommandState.EXECUTED
            self._result(
                command,
                state,
                detail={
                    "stored": {m: [d.isoformat() for d in ds] for m, ds in report.stored.items()},
                    "failed": report.failed,
                },
            )
            return state
        self._result(
            command, CommandState.REFUSED, reason=f"{command.action.value} is not supported yet"
        )
        return CommandState.REFUSED
