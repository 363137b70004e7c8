"""One meter on its bus: a visit reads items in order and keeps the meter's availability."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway.bus.link import LinkError
from gateway.bus.worker import BusWorker, Exchange, Priority, TransactionError
from gateway.config.models import MeterConfig
from gateway.polling.capability import Capabilities
from gateway.polling.driver import Driver, MeterRefused, Undecodable
from gateway.polling.state import MeterState
from protocols.model import Event
from taiqu.clock import Clock

MAX_FRAMES = 16  # follow-up frames of one reply at most (load profile blocks need a few)
DEAD_AFTER = 3  # consecutive silent items after a reply in the same visit: the meter went away


@dataclass
class MeterRead:
    """What one visit to a meter produced."""

    meter: str
    values: dict[str, Any] = field(default_factory=dict)
    by_item: dict[Any, dict[str, Any]] = field(default_factory=dict)
    refused: list[str] = field(default_factory=list)
    unreadable: dict[str, str] = field(default_factory=dict)  # item key → reason
    error: str = ""
    bus: str = ""
    drift_s: float | None = None  # meter clock − gateway clock (events sweeps)

    @property
    def ok(self) -> bool:
        return not self.error


class MeterPoller:
    """Reads one meter through its bus worker and keeps its availability and capabilities.

    A visit reads items in order.  A refused or undecodable reply marks the item (the meter is
    alive) and a block falls back to its members.  On silence the poller asks an item the meter
    answered before (``known_good``): if that answers, the meter is only mute on this item
    (unsupported, counted on the second time); if not, the meter is gone — failed, back-off.
    Without a known item yet, two silent items in a row mean a dead meter.
    """

    def __init__(
        self,
        meter: MeterConfig,
        driver: Driver,
        worker: BusWorker,
        clock: Clock,
        caps: Capabilities | None = None,
    ) -> None:
        self.meter = meter
        self.driver = driver
        self.worker = worker
        self.clock = clock
        self.state = MeterState(meter.id)
        self.caps = caps or Capabilities(meter.id)
        self.known_good: Any = None  # an item the meter answered: the liveness probe

    def _factory(self, item: Any) -> Callable[[], Exchange]:
        driver = self.driver
        return lambda: driver.exchange(item)

    async def _transact(self, item: Any, priority: Priority) -> Any:
        """One item's reply, follow-up frames included."""
        line = self.meter.line_settings
        outcome = await self.worker.transact(self._factory(item), priority, line)
        parts = [outcome]
        while (nxt := self.driver.continuation(parts[-1])) is not None:
            if len(parts) >= MAX_FRAMES:
                return Undecodable(f"more than {MAX_FRAMES} follow-up frames")
            try:
                parts.append(await self.worker.transact(nxt, priority, line))
            except TransactionError as exc:
                return Undecodable(f"follow-up frame {len(parts)} missing ({exc})")
        return parts[0] if len(parts) == 1 else self.driver.join(item, parts)

    def _unreadable(
        self, result: MeterRead, item: Any, reason: str, detail: str, events: list[Event]
    ) -> Sequence[Any]:
        """Mark ``item`` unreadable; the items to read instead (its members)."""
        key = self.driver.key(item)
        if reason == "refused":
            result.refused.append(detail)
        if not self.driver.tracked(item):  # "no such record / freeze": an answer, not a lack
            return ()
        result.unreadable[key] = reason
        fallback = self.driver.fallback(item)
        lost = () if fallback else self.driver.quantities(item)  # members carry the quantities
        event = self.caps.mark(key, reason, lost, self.clock.now(), detail)
        if event:
            events.append(event)
        return fallback

    async def _alive(self, silent_item: Any, priority: Priority) -> bool:
        """Ask an item this meter answered before: is the meter there, only mute on this one?"""
        probe = self.known_good
        if probe is None or self.driver.key(probe) == self.driver.key(silent_item):
            return False
        try:
            await self._transact(probe, priority)
        except TransactionError:
            return False
        return True

    async def read_items(
        self, items: Sequence[Any], priority: Priority, events: list[Event]
    ) -> MeterRead:
        """Read ``items`` in order (see the class docstring)."""
        result = MeterRead(self.meter.id, bus=self.meter.bus)
        queue = deque(items)
        answered, silent, last_error = False, [], ""
        while queue:
            item = queue.popleft()
            key = self.driver.key(item)
            if self.caps.skip(key, self.clock.now()):
                result.unreadable[key] = self.caps.reason(key) or "unsupported"
                queue.extendleft(reversed(self.driver.fallback(item)))
                continue
            try:
                outcome = await self._transact(item, priority)
            except TransactionError as exc:
                last_error = str(exc)
                if await self._alive(item, priority):
                    self._note_alive(answered, events)
                    answered = True
                    silent.append(item)
                    self._silent(result, silent, queue, events)
                    continue
                silent.append(item)
                if answered or self.known_good is not None or self.state.failing:
                    break  # silent, and so is what it answered before: the meter is gone
                if len(silent) >= 2 or not queue:
                    break  # nothing answers: a dead meter costs two timeouts
                continue
            except LinkError as exc:  # the bus is down: not the meter's fault
                result.error = str(exc)
                return result
            self._note_alive(answered, events)
            answered = True
            self.known_good = item
            self._silent(result, silent, queue, events)
            try:
                decoded = self.driver.decode(item, outcome)
            except MeterRefused as exc:
                fallback = self._unreadable(result, item, exc.reason, str(exc), events)
                queue.extendleft(reversed(fallback))
                continue
            event = self.caps.answered(key, self.clock.now())
            if event:
                events.append(event)
            result.by_item[item] = decoded
            result.values.update(decoded)
        if silent:
            result.error = last_error
            event = self.state.failed(self.clock.now(), result.error)
            if event:
                events.append(event)
        return result

    def _note_alive(self, answered: bool, events: list[Event]) -> None:
        if not answered:
            event = self.state.succeeded(self.clock.now())
            if event:
                events.append(event)

    def _silent(
        self, result: MeterRead, silent: list[Any], queue: deque[Any], events: list[Event]
    ) -> None:
        """Items that got no reply while the meter answers others: unsupported (emptied)."""
        for quiet in reversed(silent):
            fallback = self._unreadable(
                result, quiet, "unsupported", "no reply while other items answer", events
            )
            queue.extendleft(reversed(fallback))
        silent.clear()
