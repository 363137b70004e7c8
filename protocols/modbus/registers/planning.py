"""Block reads: the fewest Modbus requests that cover the quantities a poll wants."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from protocols.modbus.messages import ReadRegisters
from protocols.modbus.registers.meter_map import MeterMap, Register, resolve


@dataclass(frozen=True, slots=True)
class BlockRead:
    """One read request of a plan: ``count`` registers from ``address`` with ``function``."""

    function: int
    address: int
    count: int
    quantities: tuple[str, ...]

    def request(self, unit: int) -> ReadRegisters:
        """The request that performs this read on meter ``unit``."""
        return ReadRegisters(unit, self.function, self.address, self.count)


def plan_reads(model: str | MeterMap, wanted: Iterable[str] | None = None) -> list[BlockRead]:
    """The fewest block reads covering ``wanted`` quantities (all when None).

    Rows are coalesced per function in address order while the block stays within the model's
    ``max_read`` (≤ 125) and the hole to the next row is at most ``max_gap`` registers: a hole
    costs 2 bytes a register, a second request a whole turnaround.
    """
    meter = resolve(model)
    rows = sorted(meter.select(wanted), key=lambda r: (r.function, r.address))
    plan: list[BlockRead] = []
    block: list[Register] = []
    for row in rows:
        if block:
            first, end = block[0], max(r.end for r in block)
            if (
                row.function == first.function
                and row.address - end <= meter.max_gap
                and max(end, row.end) - first.address <= meter.max_read
            ):
                block.append(row)
                continue
            plan.append(_block(block))
        block = [row]
    if block:
        plan.append(_block(block))
    return plan


def _block(rows: Sequence[Register]) -> BlockRead:
    start = rows[0].address
    end = max(r.end for r in rows)
    return BlockRead(rows[0].function, start, end - start, tuple(r.quantity for r in rows))


__all__ = ["BlockRead", "plan_reads"]
