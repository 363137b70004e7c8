"""The command executor: lifecycle and per-meter execution (see ``gateway.commands``); relay
commands and their read-backs are ``gateway.commands.relay``."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from gateway.clock.sync import TimeSyncPolicy
from gateway.commands.clock import MeterClocks
from gateway.commands.relay import RelayControl
from gateway.commands.secrets import MeterCredentials
from gateway.commands.types import (
    CLOCK_ACTIONS,
    DEFAULT_RECONNECT_WINDOW_S,
    RECONNECTS,
    ArchiveHandler,
    CommandStore,
    Handler,
    MeterFailure,
    MeterLike,
    Outcome,
    Publish,
    SignatureCheck,
    Transact,
    accept_unsigned,
    password_of,
)
from protocols.dlt645.messages import DEFAULT_OPERATOR, DEFAULT_PASSWORD
from protocols.errors import ContractError
from protocols.uplink.messages import Command, CommandAction, CommandResult, CommandState
from taiqu.clock import Clock

if TYPE_CHECKING:
    from gateway.commands.secured import Step

log = logging.getLogger(__name__)


def _secured_step(command: Command) -> Step | None:
    """The ESAM step in ``command.params``, None without one (its models load on first use)."""
    if "esam" not in command.params:
        return None
    from protocols.uplink.secured import parse_step

    return parse_step(dict(command.params))


async def run_step(
    executor: CommandExecutor, command: Command, meter: MeterLike, step: Step
) -> Outcome:
    """``gateway.commands.secured.run_step``, imported with the first secured command."""
    from gateway.commands import secured

    return await secured.run_step(executor, command, meter, step)


class CommandExecutor(RelayControl):
    """Runs head-end commands through their lifecycle (see module docstring)."""

    def __init__(
        self,
        gateway_id: str,
        *,
        store: CommandStore,
        publish: Publish,
        transact: Transact,
        meters: Callable[[], Mapping[str, MeterLike]],
        clock: Clock,
        clock_synced: Callable[[], bool],
        zone: str = "Asia/Shanghai",
        read: Handler | None = None,
        backfill: Handler | None = None,
        archive_update: ArchiveHandler | None = None,
        verify_signature: SignatureCheck = accept_unsigned,
        reconnect_window_s: float = DEFAULT_RECONNECT_WINDOW_S,
        rng: random.Random | None = None,
        baud_of: Callable[[str], int] = lambda bus: 2400,
        password: str = DEFAULT_PASSWORD,
        operator: str = DEFAULT_OPERATOR,
        credentials: Callable[[str], MeterCredentials] | None = None,
        readback_deadline_s: float = 120.0,
        readback_interval_s: float = 5.0,
        time_sync_policy: TimeSyncPolicy | None = None,
    ) -> None:
        if reconnect_window_s < 0:
            raise ValueError("reconnect_window_s must not be negative")
        self.gateway_id = gateway_id
        self.store = store
        self.publish = publish
        self.transact = transact
        self.meters = meters
        self.clock = clock
        self.clock_synced = clock_synced
        self.zone = zone
        self.handlers: dict[CommandAction, Handler | None] = {
            CommandAction.READ: read,
            CommandAction.BACKFILL: backfill,
        }
        self.archive_update = archive_update
        self.verify_signature = verify_signature
        self.reconnect_window_s = reconnect_window_s
        self.rng = rng or random.Random()
        self.baud_of = baud_of
        # by meter id ([commands] meter_secrets_file); else every meter gets password/operator
        self.credentials = credentials or (lambda _meter: MeterCredentials(password, operator))
        self.readback_deadline_s = readback_deadline_s
        self.readback_interval_s = readback_interval_s
        self.clocks = MeterClocks(
            transact,
            store,
            clock,
            zone,
            baud_of,
            time_sync_policy or TimeSyncPolicy(),
            password=lambda meter: password_of(self.credentials(meter).password),
        )

    # -- lifecycle ------------------------------------------------------------------------
    def _emit(
        self,
        command_id: str,
        state: CommandState,
        meter: str | None = None,
        reason: str | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> CommandResult:
        now = self.clock.now()
        extra = dict(detail or {})
        self.store.log_command(
            command_id, state.value, at=now, meter=meter, reason=reason, detail=extra
        )
        result = CommandResult(
            id=command_id,
            gateway=self.gateway_id,
            state=state,
            at=now,
            meter=meter,
            reason=reason,
            detail=extra,
        )
        self.publish(result)
        return result

    async def handle(self, command: Command) -> CommandState:
        """Take a command from the command topic through its lifecycle; its final state."""
        if self.store.command_seen(command.id):  # re-delivered: never executed twice
            log.info("command %s delivered again: refused as duplicate", command.id)
            steps = self.store.command_log(command.id)
            last = steps[-1].get("state") if steps else None
            self._publish_only(command.id, CommandState.REFUSED, "duplicate", {"last": last})
            return CommandState.REFUSED
        self._emit(command.id, CommandState.RECEIVED, detail={"action": command.action.value})
        rule = self._refusal(command)
        if rule is not None:
            self._emit(command.id, CommandState.REFUSED, reason=rule)
            return CommandState.REFUSED
        if command.expired(self.clock.now()):
            self._emit(command.id, CommandState.EXPIRED, reason="valid_until passed")
            return CommandState.EXPIRED
        if command.action is CommandAction.ARCHIVE_UPDATE:
            return await self._archive(command)
        targets = self._targets(command)
        if isinstance(targets, str):
            self._emit(command.id, CommandState.REFUSED, reason=targets)
            return CommandState.REFUSED
        try:
            step = _secured_step(command)
        except ContractError as exc:
            self._emit(command.id, CommandState.REFUSED, reason=str(exc))
            return CommandState.REFUSED
        self._emit(command.id, CommandState.EXECUTING, detail={"meters": len(targets)})
        if step is not None:  # a secured step for ESAM meters (gateway.commands.secured)
            outcomes = await self._per_meter(command, targets, step)
        elif command.action is CommandAction.TIME_SYNC:
            outcomes = await self._time_sync(command, targets)
        else:
            outcomes = await self._per_meter(command, targets)
        return self._summary(command, outcomes)

    def _publish_only(
        self, command_id: str, state: CommandState, reason: str, detail: dict[str, Any]
    ) -> None:
        """A result that must not touch the log (the log already holds this id)."""
        self.publish(
            CommandResult(
                id=command_id,
                gateway=self.gateway_id,
                state=state,
                at=self.clock.now(),
                reason=reason,
                detail=detail,
            )
        )

    def _refusal(self, command: Command) -> str | None:
        if command.gateway != self.gateway_id:
            return "wrong_gateway"
        problem = self.verify_signature(command)
        if problem is not None:
            return f"signature: {problem}"
        if command.action in CLOCK_ACTIONS and not self.clock_synced():
            return "clock_unsynced"
        if command.action in self.handlers and self.handlers[command.action] is None:
            return "unsupported_action"
        if command.action is CommandAction.ARCHIVE_UPDATE and self.archive_update is None:
            return "unsupported_action"
        return None

    def _targets(self, command: Command) -> list[MeterLike] | str:
        archive = self.meters()
        if command.meters is None:
            return list(archive.values())
        unknown = [m for m in command.meters if m not in archive]
        if unknown and len(unknown) == len(command.meters):
            return "unknown_meters"
        out: list[MeterLike] = []
        for meter_id in dict.fromkeys(command.meters):
            if meter_id in archive:
                out.append(archive[meter_id])
            else:
                self._emit(command.id, CommandState.REFUSED, meter_id, "unknown_meter")
        return out

    def _summary(self, command: Command, outcomes: Sequence[Outcome]) -> CommandState:
        states = [o.state for o in outcomes]
        counts = {s.value: states.count(s) for s in set(states)}
        if states and all(s in (CommandState.EXECUTED, CommandState.ARMED) for s in states):
            final = CommandState.EXECUTED
        elif states and all(s is CommandState.EXPIRED for s in states):
            final = CommandState.EXPIRED
        else:
            final = CommandState.FAILED
        reason = None if final is CommandState.EXECUTED else "not every meter executed"
        self._emit(command.id, final, reason=reason, detail={"meters": counts})
        return final

    # -- per-meter execution ----------------------------------------------------------------
    async def _per_meter(
        self, command: Command, targets: Sequence[MeterLike], step: Step | None = None
    ) -> list[Outcome]:
        delays = self._spread(command, targets)
        order = sorted(range(len(targets)), key=lambda i: delays[i])
        started = self.clock.now()
        outcomes: list[Outcome] = []
        for i in order:
            meter = targets[i]
            wait = (started + timedelta(seconds=delays[i]) - self.clock.now()).total_seconds()
            if wait > 0:
                await self.clock.sleep(wait)
            if command.expired(self.clock.now()):
                outcome = Outcome(CommandState.EXPIRED, "valid_until passed before its turn")
            else:
                outcome = await self._one(command, meter, step)
            self._emit(command.id, outcome.state, meter.id, outcome.reason, outcome.detail)
            outcomes.append(outcome)
        return outcomes

    def _spread(self, command: Command, targets: Sequence[MeterLike]) -> list[float]:
        """Seconds after the start at which each meter's turn comes (mass reconnects spread)."""
        if command.action not in RECONNECTS or len(targets) < 2 or not self.reconnect_window_s:
            return [0.0] * len(targets)
        return [self.rng.uniform(0, self.reconnect_window_s) for _ in targets]

    async def _one(self, command: Command, meter: MeterLike, step: Step | None = None) -> Outcome:
        handler = self.handlers.get(command.action)
        try:
            if step is not None:
                return await run_step(self, command, meter, step)
            if handler is not None:
                detail = await handler(command, meter.id)
                return Outcome(CommandState.EXECUTED, None, detail)
            return await self._control(command, meter)
        except MeterFailure as exc:
            return Outcome(CommandState.FAILED, str(exc))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the bus edge: timeouts, link down, garbage
            return Outcome(CommandState.FAILED, f"no_reply: {exc or type(exc).__name__}")

    # -- time sync (gateway.commands.clock) and archive ------------------------------------
    async def _time_sync(self, command: Command, targets: Sequence[MeterLike]) -> list[Outcome]:
        outcomes = await self.clocks.time_sync(targets)
        for meter_id, outcome in outcomes.items():
            self._emit(command.id, outcome.state, meter_id, outcome.reason, outcome.detail)
        return list(outcomes.values())

    async def _archive(self, command: Command) -> CommandState:
        assert self.archive_update is not None
        self._emit(command.id, CommandState.EXECUTING)
        try:
            detail = await self.archive_update(command)
        except Exception as exc:
            self._emit(command.id, CommandState.FAILED, reason=str(exc) or type(exc).__name__)
            return CommandState.FAILED
        self._emit(command.id, CommandState.EXECUTED, detail=detail)
        return CommandState.EXECUTED
