"""One meter on its bus: a visit reads items in order and keeps the meter's availability."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway.bus.link import LinkError
from gateway.bus.worker import BusWorker, Exchange, Priority, TransactionError
from gateway.config.models import MeterConfig
from gateway.polling.driver import Driver, MeterRefused
from gateway.polling.state import MeterState
from protocols.model import Event
from taiqu.clock import Clock


@dataclass
class MeterRead:
    """What one visit to a meter produced."""

    meter: str
    values: dict[str, Any] = field(default_factory=dict)
    by_item: dict[Any, dict[str, Any]] = field(default_factory=dict)
    refused: list[str] = field(default_factory=list)
    error: str = ""
    bus: str = ""
    drift_s: float | None = None  # meter clock − gateway clock (events sweeps)

    @property
    def ok(self) -> bool:
        return not self.error


class MeterPoller:
    """Reads one meter through its bus worker and keeps its availability state."""

    def __init__(self, meter: MeterConfig, driver: Driver, worker: BusWorker, clock: Clock) -> None:
        self.meter = meter
        self.driver = driver
        self.worker = worker
        self.clock = clock
        self.state = MeterState(meter.id)

    def _factory(self, item: Any) -> Callable[[], Exchange]:
        driver = self.driver
        return lambda: driver.exchange(item)

    async def read_items(
        self, items: Sequence[Any], priority: Priority, events: list[Event]
    ) -> MeterRead:
        """Read ``items`` in order; stop at the first silence (the meter is marked failing)."""
        result = MeterRead(self.meter.id, bus=self.meter.bus)
        for item in items:
            try:
                outcome = await self.worker.transact(self._factory(item), priority)
            except TransactionError as exc:
                result.error = str(exc)
                event = self.state.failed(self.clock.now(), result.error)
                if event:
                    events.append(event)
                return result
            except LinkError as exc:  # the bus is down: not the meter's fault
                result.error = str(exc)
                return result
            event = self.state.succeeded(self.clock.now())
            if event:
                events.append(event)
            try:
                decoded = self.driver.decode(item, outcome)
            except MeterRefused as exc:
                result.refused.append(str(exc))
                continue
            result.by_item[item] = decoded
            result.values.update(decoded)
        return result
