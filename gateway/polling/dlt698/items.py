"""Read items of the DL/T 698.45 driver: what one GET asks, and the objects it covers."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.events import Counter
from protocols.dlt698.descriptors import MS, OAD, Selector9, Selector10
from protocols.dlt698.objects import (
    CLOCK,
    EVENT_COUNT_ATTRIBUTE,
    EVENT_COUNT_KEYS,
    OBJECTS,
    STATUS_WORDS,
    find_object,
)
from protocols.model import MeterTime

DAR_UNAUTHORISED = 15
EVENT_OI = {Counter.POWER_DOWN: 0x3011, Counter.METER_COVER: 0x301B, Counter.TERMINAL_COVER: 0x301C}
INSTANT = tuple(OAD(oi, 2) for oi in (0x2000, 0x2001, 0x2004, 0x200A, 0x200F))
EVENT_SWEEP = (*(OAD(oi, EVENT_COUNT_ATTRIBUTE) for oi in EVENT_OI.values()), STATUS_WORDS, CLOCK)
ALL_METERS = MS(1)
FRAME_OVERHEAD = 4 + 16 + 8  # preamble, header with a 6-byte address, FCS + end, PIID + tags
RESULT_ALLOWANCE = 40  # one attribute's result: OAD, choice, array of five double-longs
ROW_ALLOWANCE = 64  # one record row of the columns Taiqu asks


@dataclass(frozen=True, slots=True)
class Item:
    """One read: GET Normal / NormalList of ``oads``, or GET-Record of ``oads[0]``."""

    oads: tuple[OAD, ...]
    rsd: Selector9 | Selector10 | None = None
    columns: tuple[OAD, ...] = ()

    @property
    def record(self) -> bool:
        return self.rsd is not None

    @property
    def key(self) -> str:
        name = "+".join(o.hex for o in self.oads)
        if isinstance(self.rsd, Selector9):
            return f"{name}/last{self.rsd.last}"
        if isinstance(self.rsd, Selector10):
            return f"{name}/last1-{self.rsd.last}"
        return name


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One row of a 3011/301B/301C record (``gateway.events.RecordLike``)."""

    number: int | None
    start: MeterTime | None
    end: MeterTime | None


def object_keys(oad: OAD) -> tuple[str, ...]:
    """The canonical keys attribute ``oad`` decodes to."""
    if oad.attribute == EVENT_COUNT_ATTRIBUTE and oad.oi in EVENT_COUNT_KEYS:
        return (EVENT_COUNT_KEYS[oad.oi],)
    row = find_object(oad.oi)
    if row is None or oad.attribute != 2 or row.layout == "record":
        return ()
    if row.layout == "scalar":
        return (row.prefix,)
    if row.layout == "status":
        return (*(f"status.word{n}" for n in range(1, 8)), "relay.state")
    return tuple(f"{row.prefix}.{k}" for k in row.keys)


QUANTITY_OAD = {key: row.oad for row in OBJECTS.values() for key in object_keys(row.oad)}
QUANTITY_OAD |= {key: OAD(oi, EVENT_COUNT_ATTRIBUTE) for oi, key in EVENT_COUNT_KEYS.items()}
