"""The command executor: lifecycle, per-meter execution, read-backs (see ``gateway.commands``)."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from gateway.clock.sync import TimeSyncPolicy
from gateway.commands.clock import MeterClocks
from gateway.commands.secrets import MeterCredentials
from gateway.commands.types import (
    ARMED_KEY,
    CLOCK_ACTIONS,
    CONTROL,
    DEFAULT_RECONNECT_WINDOW_S,
    DI_STATUS_WORD3,
    PROTOCOL_698,
    RECONNECTS,
    RELAY_ACTIONS,
    SW3_ALARM,
    SW3_KEEP_POWER,
    SW3_RELAY_OPEN,
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
from protocols.dlt645 import (
    AbnormalReply,
    ReadData,
    ReadReply,
    RemoteControl,
)
from protocols.dlt645.messages import DEFAULT_OPERATOR, DEFAULT_PASSWORD
from protocols.errors import ContractError
from protocols.model import MeterTime
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


class CommandExecutor:
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

    async def _control(self, command: Command, meter: MeterLike) -> Outcome:
        action = CONTROL[command.action]
        if meter.protocol not in ("dlt645-2007", PROTOCOL_698):
            return Outcome(CommandState.REFUSED, "unsupported_protocol")
        if command.action in RELAY_ACTIONS:
            self.supersede(meter.id, command.id)
        if meter.protocol == PROTOCOL_698:
            from gateway.commands import dlt698  # the 698 codec only once a 698 meter is asked

            return await dlt698.control(self, command, meter)
        valid_until = MeterTime.from_utc(command.valid_until, self.zone).local
        secret = self.credentials(meter.id)
        request = RemoteControl(
            meter.address, action, secret.password, secret.operator, valid_until=valid_until
        )
        reply = await self.transact(meter.id, request)
        if isinstance(reply, AbnormalReply):
            raise MeterFailure(", ".join(reply.reasons) or f"error byte {reply.error:#04x}")
        return await self.await_relay(command, meter)

    async def await_relay(self, command: Command, meter: MeterLike) -> Outcome:
        """Read status word 3 until it shows the command carried out or the deadline passes.

        A meter with a trip delay (or deferring the trip under high current) acknowledges at
        once and switches later: meanwhile the command is reported ``executing`` with
        ``pending`` in its detail, once; a deadline of 0 reads back once."""
        deadline = self.clock.now() + timedelta(seconds=self.readback_deadline_s)
        reported = False
        while True:
            sw3 = await self.read_status3(meter)
            outcome = self._readback(command, meter.id, sw3)
            if outcome.state is not CommandState.FAILED or self.clock.now() >= deadline:
                if outcome.state is CommandState.FAILED and self.readback_deadline_s:
                    waited = f"after {self.readback_deadline_s:.0f} s"
                    outcome = Outcome(outcome.state, f"{outcome.reason} {waited}", outcome.detail)
                return outcome
            if not reported:
                pending = {
                    **(outcome.detail or {}),
                    "pending": True,
                    "deadline": deadline.isoformat(),
                }
                self._emit(command.id, CommandState.EXECUTING, meter.id, "awaiting relay", pending)
                reported = True
            await self.clock.sleep(self.readback_interval_s)

    async def read_status3(self, meter: MeterLike) -> int:
        """Status word 3 of ``meter`` (the read-back of every control command)."""
        if meter.protocol == PROTOCOL_698:
            from gateway.commands import dlt698

            return await dlt698.status_word3(self.transact, meter)
        reply = await self.transact(meter.id, ReadData(meter.address, DI_STATUS_WORD3))
        if isinstance(reply, AbnormalReply):
            raise MeterFailure("readback refused: " + ", ".join(reply.reasons))
        if not isinstance(reply, ReadReply):
            raise MeterFailure("readback: no status word 3")
        word = next(iter(reply.values.values()), None)
        raw = getattr(word, "raw", word)
        if not isinstance(raw, int):
            raise MeterFailure("readback: status word 3 did not decode")
        return raw

    def _readback(self, command: Command, meter: str, sw3: int) -> Outcome:
        relay = "open" if sw3 & SW3_RELAY_OPEN else "closed"
        detail: dict[str, Any] = {"status_word3": sw3, "relay": relay}
        action = command.action
        if action is CommandAction.RELAY_CLOSE_ALLOWED and relay == "open":
            self._arm(meter, command.id)
            return Outcome(CommandState.ARMED, "awaiting the customer's button", detail)
        expected = {
            CommandAction.RELAY_TRIP: relay == "open",
            CommandAction.RELAY_CLOSE_DIRECT: relay == "closed",
            CommandAction.RELAY_CLOSE_ALLOWED: relay == "closed",
            CommandAction.KEEP_POWER_ON: bool(sw3 & SW3_KEEP_POWER),
            CommandAction.KEEP_POWER_OFF: not sw3 & SW3_KEEP_POWER,
            CommandAction.ALARM: bool(sw3 & SW3_ALARM),
            CommandAction.ALARM_RELEASE: True,  # bit 7 also flags a low prepay balance
        }[action]
        if not expected:
            return Outcome(CommandState.FAILED, f"readback: relay {relay}, sw3 {sw3:#06x}", detail)
        return Outcome(CommandState.EXECUTED, None, detail)

    # -- armed close-allowed commands -------------------------------------------------------
    def _armed(self) -> dict[str, str]:
        value = self.store.get_state(ARMED_KEY, {})
        return dict(value) if isinstance(value, dict) else {}

    def _arm(self, meter: str, command_id: str) -> None:
        self.store.set_state(ARMED_KEY, {**self._armed(), meter: command_id})

    def supersede(self, meter: str, command_id: str) -> None:
        """A new relay command for ``meter``: an armed close-allowed one ends as superseded."""
        armed = self._armed()
        previous = armed.pop(meter, None)
        if previous is not None and previous != command_id:
            self.store.set_state(ARMED_KEY, armed)
            self._emit(previous, CommandState.FAILED, meter, f"superseded by {command_id}")

    def armed(self) -> dict[str, str]:
        """Meters whose close-allowed command waits for the button: meter → command id."""
        return self._armed()

    def observe_relay(self, meter: str, relay: str) -> CommandResult | None:
        """Tell the executor a relay state seen by a sweep; ends an armed command when closed."""
        armed = self._armed()
        if relay != "closed" or meter not in armed:
            return None
        command_id = armed.pop(meter)
        self.store.set_state(ARMED_KEY, armed)
        return self._emit(
            command_id, CommandState.EXECUTED, meter, None, {"relay": "closed", "by": "customer"}
        )

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
