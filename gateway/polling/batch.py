"""Where a bus sweep puts what it reads: a batch committed when the poller says so.

The daemon gives each bus a ``gateway.store.group.GroupCommit`` (one transaction per group:
SD-card wear); without one, ``DirectBatch`` writes through at once (tests with plain sinks).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from protocols.model import Event, Reading


class Batch(Protocol):
    """Readings, events and meter state of one bus, committed by ``flush``."""

    def add_readings(self, readings: Sequence[Reading], command: str | None = None) -> None: ...

    def add_events(self, events: Sequence[Event]) -> None: ...

    def set_state(self, key: str, value: Any) -> None: ...

    def get_state(self, key: str, default: Any = None) -> Any: ...

    def due(self) -> bool: ...

    async def flush(self) -> int | None: ...


BatchFactory = Callable[[str], Batch]


class DirectBatch:
    """Writes through to a sink (``append_*``) and a state store at once: nothing to flush."""

    def __init__(self, sink: Any, state: Any = None) -> None:
        self.sink = sink
        self.state = state

    def add_readings(self, readings: Sequence[Reading], command: str | None = None) -> None:
        if readings and command:
            self.sink.append_readings(readings, command=command)
        elif readings:
            self.sink.append_readings(readings)

    def add_events(self, events: Sequence[Event]) -> None:
        if events:
            self.sink.append_events(events)

    def set_state(self, key: str, value: Any) -> None:
        if self.state is not None:
            self.state.set_state(key, value)

    def get_state(self, key: str, default: Any = None) -> Any:
        if self.state is None:
            return default
        value = self.state.get_state(key)
        return default if value is None else value

    def due(self) -> bool:
        return False

    async def flush(self) -> int | None:
        return None
