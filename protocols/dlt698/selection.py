"""Record selection (RSD, selectors 0…10) and meter sets (MS) of DL/T 698.45 (clause 7.3.2).

Frozen dataclasses only; their wire forms live in ``axdr``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from protocols.dlt698.datetimes import TI, DateTimeS
from protocols.dlt698.errors import check_range

if TYPE_CHECKING:
    from protocols.dlt698.axdr import Data
    from protocols.dlt698.descriptors import OAD


@dataclass(frozen=True, slots=True)
class MS:
    """Meter set: choice 0 none, 1 all, 2 user types, 3 addresses, 4 serials, 5-7 regions."""

    choice: int
    items: tuple[Any, ...] = ()

    def __post_init__(self) -> None:
        check_range(self.choice, 0, 7, "MS choice")


ALL_METERS = MS(1)
NO_METER = MS(0)


@dataclass(frozen=True, slots=True)
class Selector1:
    """RSD 1: records whose column ``oad`` equals ``value``."""

    oad: OAD
    value: Data


@dataclass(frozen=True, slots=True)
class Selector2:
    """RSD 2: records whose column ``oad`` is in [start, end) stepping ``interval``."""

    oad: OAD
    start: Data
    end: Data
    interval: Data


@dataclass(frozen=True, slots=True)
class Selector3:
    """RSD 3: several Selector2 ranges."""

    ranges: tuple[Selector2, ...]


@dataclass(frozen=True, slots=True)
class Selector4:
    """RSD 4 (collection start time) / 5 (collection store time) with a meter set."""

    time: DateTimeS
    meters: MS
    number: int = 4


@dataclass(frozen=True, slots=True)
class Selector6:
    """RSD 6/7/8: start and end time, interval and meter set (concentrator task data)."""

    start: DateTimeS
    end: DateTimeS
    interval: TI
    meters: MS
    number: int = 6


@dataclass(frozen=True, slots=True)
class Selector9:
    """RSD 9: the ``last``-th most recent record (1 = the last one)."""

    last: int

    def __post_init__(self) -> None:
        check_range(self.last, 0, 255, "Selector9 record number")


@dataclass(frozen=True, slots=True)
class Selector10:
    """RSD 10: the ``last`` most recent records of a meter set."""

    last: int
    meters: MS

    def __post_init__(self) -> None:
        check_range(self.last, 0, 255, "Selector10 record count")


RSD = None | Selector1 | Selector2 | Selector3 | Selector4 | Selector6 | Selector9 | Selector10
"""Record selection descriptor (``None`` is selector 0, "no selection").  A TSA is carried as a
``frame.ServerAddress`` (same address flag, address in nameplate order)."""


__all__ = [
    "ALL_METERS",
    "MS",
    "NO_METER",
    "RSD",
    "Selector1",
    "Selector2",
    "Selector3",
    "Selector4",
    "Selector6",
    "Selector9",
    "Selector10",
]
