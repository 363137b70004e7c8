"""Types, constants and injected interfaces of the command executor (see ``gateway.commands``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

from protocols.dlt645 import ControlAction, Reply, Request
from protocols.uplink.messages import Command, CommandAction, CommandResult, CommandState

if TYPE_CHECKING:  # the 698 codec is imported only when a 698 meter is commanded
    from protocols.dlt698 import apdu as A698
    from protocols.dlt698.apdu import Response as Response698

PROTOCOL_698 = "dlt698"  # MeterConfig.protocol of a DL/T 698.45 meter (``gateway.commands.dlt698``)

DI_STATUS_WORD3 = 0x04000503
DI_DATE = 0x04000101
DI_TIME = 0x04000102
SW3_RELAY_OPEN = 1 << 4
SW3_ALARM = 1 << 7
SW3_KEEP_POWER = 1 << 12
ARMED_KEY = "commands.armed"  # store state: meter → id of its close-allowed command
TIME_SYNC_KEY = "timesync.last"  # store state: bus → last broadcast (meter-local ISO)
DEFAULT_RECONNECT_WINDOW_S = 300.0

CONTROL: dict[CommandAction, ControlAction] = {
    CommandAction.RELAY_TRIP: ControlAction.TRIP,
    CommandAction.RELAY_CLOSE_ALLOWED: ControlAction.CLOSE_ALLOWED,
    CommandAction.RELAY_CLOSE_DIRECT: ControlAction.CLOSE_DIRECT,
    CommandAction.ALARM: ControlAction.ALARM,
    CommandAction.ALARM_RELEASE: ControlAction.ALARM_RELEASE,
    CommandAction.KEEP_POWER_ON: ControlAction.KEEP_POWER,
    CommandAction.KEEP_POWER_OFF: ControlAction.KEEP_POWER_RELEASE,
}
RELAY_ACTIONS = frozenset(
    {
        CommandAction.RELAY_TRIP,
        CommandAction.RELAY_CLOSE_ALLOWED,
        CommandAction.RELAY_CLOSE_DIRECT,
        CommandAction.KEEP_POWER_ON,
        CommandAction.KEEP_POWER_OFF,
    }
)
CLOCK_ACTIONS = RELAY_ACTIONS | {CommandAction.TIME_SYNC}
RECONNECTS = frozenset({CommandAction.RELAY_CLOSE_ALLOWED, CommandAction.RELAY_CLOSE_DIRECT})


class MeterLike(Protocol):
    """A meter of the archive (``ArchiveMeter`` or the config's meter row)."""

    @property
    def id(self) -> str: ...

    @property
    def bus(self) -> str: ...

    @property
    def protocol(self) -> str: ...

    @property
    def address(self) -> str: ...


class CommandStore(Protocol):
    """The parts of the gateway store the executor uses (``gateway.store.Store`` has them)."""

    def log_command(
        self,
        command_id: str,
        state: str,
        *,
        at: datetime | None = None,
        meter: str | None = None,
        reason: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None: ...

    def command_seen(self, command_id: str) -> bool: ...

    def command_log(self, command_id: str) -> list[dict[str, Any]]: ...

    def get_state(self, key: str, default: Any = None) -> Any: ...

    def set_state(self, key: str, value: Any) -> None: ...


def password_of(secret_password: str) -> str:
    """The 698 password of a DL/T 645 credential ``PPxxxxxx`` (level, then six digits)."""
    return secret_password[2:] if len(secret_password) == 8 else secret_password


@dataclass(frozen=True)
class Dlt698Request:
    """One 698 request for ``transact``: the APDU built from a PIID; with ``password`` the
    exchange opens a password association first (CONNECT, then the request)."""

    build: Callable[[int], A698.Request]
    password: str | None = None


Transact: TypeAlias = (
    "Callable[[str, Request | Dlt698Request], Awaitable[Reply | Response698 | None]]"
)
"""Run one DL/T 645 (or, to a 698 meter, DL/T 698.45) request on the bus of meter ``id``
(command priority); ``None`` for a broadcast; raises (timeout, link down) when the meter gives
no usable reply."""
Handler = Callable[[Command, str], Awaitable[dict[str, Any]]]
"""Execute a delegated action (read, back-fill) for one meter; the dict goes into the result
detail; raising fails that meter with ``str(exc)`` as the reason."""
ArchiveHandler = Callable[[Command], Awaitable[dict[str, Any]]]
SignatureCheck = Callable[[Command], str | None]
Publish = Callable[[CommandResult], object]


def accept_unsigned(command: Command) -> str | None:
    """The default signature check: every command is accepted (see the security issue)."""
    return None


class MeterFailure(Exception):
    """One meter's step failed; ``str()`` is the reason reported to the head-end."""


@dataclass(frozen=True)
class Outcome:
    """How one meter's part of a command ended."""

    state: CommandState
    reason: str | None = None
    detail: Mapping[str, Any] | None = None
