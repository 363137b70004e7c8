"""Relay, alarm and keep-power commands: ``RemoteControl``, the status word 3 read-back, and
close-allowed commands armed until the customer presses the button.

``CommandExecutor`` (``gateway.commands.executor``) inherits this (see ``gateway.commands`` for
the lifecycle and the status word 3 bits).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

from gateway.commands.secrets import MeterCredentials
from gateway.commands.types import (
    ARMED_KEY,
    CONTROL,
    DI_STATUS_WORD3,
    PROTOCOL_698,
    RELAY_ACTIONS,
    SW3_ALARM,
    SW3_KEEP_POWER,
    SW3_RELAY_OPEN,
    CommandStore,
    MeterFailure,
    MeterLike,
    Outcome,
    Transact,
)
from protocols.dlt645 import AbnormalReply, ReadData, ReadReply, RemoteControl
from protocols.model import MeterTime
from protocols.uplink.messages import Command, CommandAction, CommandResult, CommandState
from taiqu.clock import Clock


class RelayControl:
    """The relay half of ``CommandExecutor``: the attributes below are set by it."""

    store: CommandStore
    transact: Transact
    clock: Clock
    zone: str
    credentials: Callable[[str], MeterCredentials]
    readback_deadline_s: float
    readback_interval_s: float

    def _emit(
        self,
        command_id: str,
        state: CommandState,
        meter: str | None = None,
        reason: str | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> CommandResult:
        raise NotImplementedError  # CommandExecutor's

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
