"""What the daemon lends the command executor, and the scheduled meter time sync.

``DaemonOps`` binds ``gateway.commands.CommandExecutor`` to the running daemon:

* ``transact(meter, request)``: one DL/T 645 request (or a ``Dlt698Request`` to a 698 meter:
  CONNECT with a password first when it has one) on that meter's bus worker at
  ``Priority.COMMAND`` (it overtakes a sweep at the next gap); a broadcast returns ``None``;
* ``read`` / ``backfill``: one meter through ``Poller.read_now`` / ``FrozenReader.run``; a meter
  that does not answer raises ``MeterFailure`` (its reason goes into the result);
* ``time_sync_after_sweep(report)``: after each events sweep, per bus and protocol family, the
  drifts the sweep measured go through ``gateway.clock.sync.plan_bus_time_sync``; a broadcast
  time sync (08H; DL/T 698.45 meters: ACTION 4000 method 127 to the broadcast address) is sent
  when the policy allows and its time is kept under the store key ``timesync.last`` (per bus for
  DL/T 645, the key the executor writes for head-end-ordered syncs, so the once-a-day rule sees
  both; ``<bus>:dlt698`` for 698 meters).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from gateway.bus.link import Line
from gateway.bus.worker import Priority
from gateway.clock.sync import TimeSyncPolicy, broadcast_time, plan_bus_time_sync
from gateway.commands import TIME_SYNC_KEY, MeterFailure
from gateway.commands.types import PROTOCOL_698, Dlt698Request
from gateway.config import GatewayConfig
from gateway.polling import MeterUnavailable, Poller, SweepReport
from gateway.polling.dlt645 import Dlt645Exchange, request_exchange
from gateway.polling.frozen import FrozenReader
from protocols.dlt645 import BroadcastTimeSync, Reply, Request, Version
from protocols.uplink import Command
from taiqu.clock import Clock

if TYPE_CHECKING:  # the 698 driver and codec are imported when a 698 meter is on a bus
    from gateway.polling.dlt698.exchange import BroadcastExchange
    from protocols.dlt698.apdu import Response as Response698

log = logging.getLogger("gateway.commands")


def _version(protocol: str) -> Version:
    return Version.V1997 if protocol == "dlt645-1997" else Version.V2007


class DaemonOps:
    """Bus access, reads and back-fill for the executor; scheduled time sync (module docstring)."""

    def __init__(
        self,
        cfg: GatewayConfig,
        poller: Poller,
        frozen: FrozenReader,
        store: Any,
        clock: Clock,
        clock_synced: Callable[[], bool],
    ) -> None:
        self.cfg = cfg
        self.poller = poller
        self.frozen = frozen
        self.store = store
        self.clock = clock
        self.clock_synced = clock_synced
        self.tz = ZoneInfo(cfg.zone)
        ts = cfg.time_sync
        self.policy = TimeSyncPolicy(max_drift_s=ts.max_drift_s, min_drift_s=ts.min_drift_s)
        self.broadcasts = 0

    # -- for the command executor ---------------------------------------------------------------

    async def transact(
        self, meter_id: str, request: Request | Dlt698Request
    ) -> Reply | Response698 | None:
        """Run ``request`` on the bus of ``meter_id`` at command priority."""
        mp = self.poller.meters.get(meter_id)
        if mp is None:
            raise MeterFailure("unknown_meter")
        if isinstance(request, Dlt698Request) or mp.meter.protocol == PROTOCOL_698:
            from gateway.polling.dlt698 import Dlt698Driver

            driver = mp.driver
            if not isinstance(request, Dlt698Request) or not isinstance(driver, Dlt698Driver):
                raise MeterFailure("unsupported_protocol")
            build, password = request.build, request.password
            outcome = await mp.worker.transact(
                lambda: driver.command_exchange(build, password),
                Priority.COMMAND,
                mp.meter.line_settings,
            )
            return outcome  # type: ignore[no-any-return]
        if not mp.meter.protocol.startswith("dlt645"):
            raise MeterFailure("unsupported_protocol")
        version, zone = _version(mp.meter.protocol), self.cfg.zone
        outcome = await mp.worker.transact(
            lambda: request_exchange(request, version, zone),
            Priority.COMMAND,
            mp.meter.line_settings,
        )
        return outcome  # type: ignore[no-any-return]

    async def read(self, command: Command, meter_id: str) -> dict[str, Any]:
        """An on-demand read of one meter (``params.quantities`` or the energy registers)."""
        quantities = command.params.get("quantities") or None
        if quantities is not None and not isinstance(quantities, list):
            raise MeterFailure("params.quantities must be a list of quantity names")
        try:
            readings = await self.poller.read_now(meter_id, quantities, command=command.id)
        except KeyError:
            raise MeterFailure("unknown_meter") from None
        except MeterUnavailable as exc:
            raise MeterFailure(f"no_reply: {exc}") from None
        if not readings:
            raise MeterFailure("no_data: the meter returned none of the quantities")
        return {"readings": len(readings), "quantities": sorted({r.quantity for r in readings})}

    async def backfill(self, command: Command, meter_id: str) -> dict[str, Any]:
        """Daily frozen values of one meter for ``params.from`` … ``params.to`` (dates)."""
        try:
            since = date.fromisoformat(str(command.params["from"]))
            until = date.fromisoformat(str(command.params.get("to", since)))
        except (KeyError, ValueError) as exc:
            raise MeterFailure(f"params: need from/to as YYYY-MM-DD ({exc})") from None
        if until < since or (until - since).days > 61:
            raise MeterFailure("params: from ≤ to, at most 62 days")
        report = await self.frozen.run(
            62, since=since, until=until, meters=[meter_id], priority=Priority.ON_DEMAND
        )
        if meter_id in report.unsupported:
            raise MeterFailure("unsupported_protocol: the meter keeps no daily freezes")
        if meter_id in report.failed:
            raise MeterFailure("no_reply: the meter stopped answering")
        days = report.stored.get(meter_id, [])
        return {"stored": [d.isoformat() for d in days]}

    # -- scheduled time sync -------------------------------------------------------------------

    def _last_sync(self, bus: str) -> datetime | None:
        value = (self.store.get_state(TIME_SYNC_KEY, {}) or {}).get(bus)
        try:
            return datetime.fromisoformat(value) if isinstance(value, str) else None
        except ValueError:
            return None

    async def time_sync_after_sweep(self, report: SweepReport) -> list[str]:
        """Broadcast a time sync on each bus whose measured drifts call for one; the buses."""
        drifts: dict[tuple[str, str], dict[str, float]] = {}
        for visit in report.visits:
            mp = self.poller.meters.get(visit.meter)
            if mp is None or visit.drift_s is None:
                continue
            # a 698 meter does not hear 645's 08H, nor a 645 meter 698's 4000 method 127
            family = "dlt698" if mp.meter.protocol == "dlt698" else "dlt645"
            drifts.setdefault((visit.bus, family), {})[visit.meter] = visit.drift_s
        synced = self.clock_synced()
        sent = []
        for (bus, family), bus_drifts in drifts.items():
            key = bus if family == "dlt645" else f"{bus}:{family}"  # once a day per protocol
            now_local = self.clock.now().astimezone(self.tz)
            plan = plan_bus_time_sync(
                bus_drifts,
                now_local,
                self._last_sync(key),
                gateway_synced=synced,
                policy=self.policy,
            )
            if not plan.broadcast:
                if plan.needing and plan.skip is not None:
                    log.info(
                        "bus %s: %d meters drift but no time sync now (%s)",
                        bus,
                        len(plan.needing),
                        plan.skip.reason.value,
                    )
                continue
            lines = {
                self.poller.meters[m].meter.line_settings
                for m in plan.needing
                if m in self.poller.meters
            } or {None}
            stamps = [await self._broadcast(bus, line, family) for line in sorted(lines, key=str)]
            when = next((w for w in stamps if w is not None), None)
            if when is None:
                continue
            state = self.store.get_state(TIME_SYNC_KEY, {}) or {}
            self.store.set_state(TIME_SYNC_KEY, {**state, key: when.isoformat()})
            self.broadcasts += 1
            sent.append(key)
            worst = max(plan.needing, key=lambda m: abs(bus_drifts[m]))
            log.info(
                "bus %s: broadcast time sync %s for %d drifting meters (worst %s: %+.0f s)",
                bus,
                when.isoformat(),
                len(plan.needing),
                worst,
                bus_drifts[worst],
            )
        return sent

    async def _broadcast(
        self, bus: str, own: Line | None = None, family: str = "dlt645"
    ) -> datetime | None:
        """Send 08H (``family`` dlt698: ACTION 4000 method 127) on ``bus`` at the line ``own``
        (None: the bus's); the meter-local time it carried (stamped on the bus thread).  A bus
        mixing line settings gets one per line."""
        worker = self.poller.workers[bus]
        line = own or self.cfg.bus(bus).line.line
        sent: list[datetime] = []

        def exchange() -> Dlt645Exchange | BroadcastExchange:
            now_local = self.clock.now().astimezone(self.tz)
            if family == "dlt698":
                from gateway.polling.dlt698.exchange import BROADCAST_FRAME_BYTES
                from gateway.polling.dlt698.exchange import broadcast_time as broadcast_time_698

                on_wire = broadcast_time(
                    now_local, line.baud, line.bits_per_char, BROADCAST_FRAME_BYTES
                )
                rounded = on_wire + timedelta(microseconds=500_000)  # date_time_s: whole seconds
                sent.append(rounded.replace(tzinfo=None, microsecond=0))
                return broadcast_time_698(sent[-1])
            when = broadcast_time(now_local, line.baud, line.bits_per_char).replace(tzinfo=None)
            sent.append(when)
            return request_exchange(BroadcastTimeSync(when), Version.V2007, self.cfg.zone)

        try:
            await worker.transact(exchange, Priority.COMMAND, own)
        except Exception as exc:  # the link is down: try after the next sweep
            log.warning("bus %s: time sync not sent: %s", bus, exc)
            return None
        return sent[-1] if sent else None
