"""The Modbus RTU driver: register-map block reads (``protocols.modbus``) as poller items."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway.config import MeterConfig
from gateway.events import Counter, PollResult
from gateway.polling.driver import Group, MeterRefused, poll_result_of
from protocols.modbus.pdu import NEED_DATA, ExceptionResponse, ModbusMaster, RegistersResponse
from protocols.modbus.registers import BlockRead, decode_block, load_map, models, plan_reads

_GROUP_PREFIXES: dict[Group, tuple[str, ...]] = {
    Group.ENERGY: ("energy.active.import.", "energy.active.export.total"),
    Group.INSTANT: ("voltage.", "current.", "power.", "power_factor.", "frequency"),
    Group.EVENTS: (),
    Group.EXPORT: ("energy.active.export.",),
}


def model_names() -> list[str]:
    """Register maps the codec ships."""
    return models()


@dataclass
class ModbusExchange:
    """One block read of one unit."""

    request: bytes
    reply_len: int
    master: ModbusMaster
    expects_reply: bool = True

    def feed(self, data: bytes) -> Any | None:
        self.master.receive_data(data)
        event = self.master.next_event()
        return None if event is NEED_DATA else event


class ModbusDriver:
    """Reads one Modbus meter through its model's register map."""

    supports_frozen = False

    def __init__(self, meter: MeterConfig, zone: str) -> None:
        self.meter = meter
        self.unit = int(meter.address)
        self.model = load_map(meter.model).model
        self._plans: dict[Group, list[BlockRead]] = {}
        offered = load_map(self.model).quantities
        for group, prefixes in _GROUP_PREFIXES.items():
            wanted = [q for q in offered if prefixes and q.startswith(prefixes)]
            self._plans[group] = plan_reads(self.model, wanted) if wanted else []

    def plan(self, group: Group) -> Sequence[BlockRead]:
        return self._plans[group]

    def items_for(self, quantities: Iterable[str]) -> Sequence[BlockRead]:
        offered = set(load_map(self.model).quantities)
        wanted = [q for q in quantities if q in offered]
        return plan_reads(self.model, wanted) if wanted else []

    def frozen_range(self, days: int) -> None:
        return None

    def record_items(self, plan: dict[Counter, list[int]]) -> Sequence[BlockRead]:
        return []  # no event records in the register maps

    def exchange(self, item: BlockRead) -> ModbusExchange:
        master = ModbusMaster()
        request = master.send(item.request(self.unit))
        return ModbusExchange(request, 5 + 2 * item.count, master)

    def decode(self, item: BlockRead, outcome: Any) -> dict[str, Any]:
        if isinstance(outcome, ExceptionResponse):
            raise MeterRefused(
                f"{self.meter.id}: exception {outcome.name} reading {item.function}:{item.address}"
            )
        assert isinstance(outcome, RegistersResponse)
        return dict(
            decode_block(
                self.model, item.function, item.address, outcome.registers, item.quantities
            )
        )

    def poll_result(
        self, values: dict[str, Any], gateway_time: datetime, clock_synced: bool
    ) -> PollResult | None:
        return poll_result_of(values, gateway_time, clock_synced)

    def records(
        self, plan: dict[Counter, list[int]], by_item: dict[Any, dict[str, Any]]
    ) -> dict[Counter, dict[int, Any]]:
        return {}

    def frozen_items(self, n: int) -> tuple[Any, Sequence[Any]]:
        raise NotImplementedError("Modbus meters keep no daily freezes")

    def settlement_items(self, n: int) -> Sequence[Any]:
        return ()  # the register maps carry no settlement periods

    def profile_item(self, category: int, start: datetime, count: int) -> None:
        return None  # nor load records

    def key(self, item: BlockRead) -> str:
        return f"fc{item.function}:{item.address}+{item.count}"

    def quantities(self, item: BlockRead) -> tuple[str, ...]:
        return tuple(item.quantities)

    def tracked(self, item: BlockRead) -> bool:
        return True

    def fallback(self, item: BlockRead) -> Sequence[BlockRead]:
        """One read per quantity: a meter that answers exception 02 for an unmapped register
        inside a block still answers the mapped ones."""
        if len(item.quantities) < 2:
            return ()
        return [r for q in item.quantities for r in plan_reads(self.model, [q])]

    def continuation(self, outcome: Any) -> None:
        return None  # Modbus replies are one frame

    def join(self, item: BlockRead, outcomes: Sequence[Any]) -> Any:
        return outcomes[-1]
