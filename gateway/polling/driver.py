"""What a protocol driver is to the poller: read groups, items, exchanges, decoded values.

A *driver* (``gateway.polling.dlt645``, ``gateway.polling.modbus``) knows one protocol: which
items a group of quantities needs (energy, events, instantaneous), how to build the exchange for
an item and how to decode its outcome into canonical quantities.  Errors::

    MeterRefused       the meter answered, but not with data (abnormal reply, Modbus exception)
    └── ReplyUndecodable  … with a well-framed value that does not decode
    MeterUnavailable   the meter did not answer (after retries) or is in back-off
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Protocol

from gateway.bus.worker import Exchange
from gateway.config.models import MeterConfig
from gateway.events import Counter, PollResult
from protocols.model import Event, MeterTime, Reading, Value
from protocols.quantities import ENERGY_EXPORT_TOTAL, ENERGY_TOTAL

ENERGY_CHECKED = (ENERGY_TOTAL, ENERGY_EXPORT_TOTAL)  # registers checked for going backwards


class Group(StrEnum):
    """What a sweep reads."""

    ENERGY = "energy"  # active energy total + tariffs
    EVENTS = "events"  # relay / status words and event counters (with new records)
    INSTANT = "instant"  # voltage, current, power, power factor, frequency
    EXPORT = "export"  # reverse (export) active energy total + tariffs: rooftop PV


class MeterRefused(Exception):
    """The meter answered, but not with data (abnormal reply / Modbus exception)."""

    reason = "refused"


class ReplyUndecodable(MeterRefused):
    """The meter answered with a valid frame whose value does not decode (partial block,
    FF/EE filler, a missing follow-up frame): the meter is alive, this item is unreadable."""

    reason = "undecodable"


@dataclass(frozen=True, slots=True)
class Undecodable:
    """An exchange's outcome for a well-framed reply whose value did not decode."""

    reason: str
    raw: str = ""  # the frame in hex, for the log


class MeterUnavailable(Exception):
    """The meter did not answer (after retries) or is in back-off."""


class Driver(Protocol):
    """One meter's protocol: items, exchanges, decoding."""

    meter: MeterConfig
    supports_frozen: bool

    def plan(self, group: Group) -> Sequence[Any]:
        """The read items of a group."""
        ...

    def items_for(self, quantities: Iterable[str]) -> Sequence[Any]:
        """The read items that cover ``quantities`` (on-demand reads)."""
        ...

    def exchange(self, item: Any) -> Exchange:
        """A fresh exchange for ``item``."""
        ...

    def decode(self, item: Any, outcome: Any) -> dict[str, Any]:
        """Values of a reply keyed by quantity (``MeterRefused`` for an abnormal reply)."""
        ...

    def poll_result(
        self, values: dict[str, Any], gateway_time: datetime, clock_synced: bool
    ) -> PollResult | None:
        """What event detection needs from a visit's values (None: the protocol has no events)."""
        ...

    def records(
        self, plan: dict[Counter, list[int]], by_item: dict[Any, dict[str, Any]]
    ) -> dict[Counter, dict[int, Any]]:
        """Event records read for ``plan``, by counter and record number."""
        ...

    def record_items(self, plan: dict[Counter, list[int]]) -> Sequence[Any]:
        """The read items of the event records a ``records_to_read`` plan names."""
        ...

    def frozen_items(self, n: int) -> tuple[Any, Sequence[Any]]:
        """(freeze time item, frozen value items) of the n-th last daily freeze; no value
        items: the freeze time item's reply carries the values too (one record row)."""
        ...

    def frozen_range(self, days: int) -> Any | None:
        """One item reading the last ``days`` freezes at once (its values: ``frozen.rows``,
        newest first), or None when the protocol reads them one by one (``frozen_items``)."""
        ...

    def settlement_items(self, n: int) -> Sequence[Any]:
        """The items reading the n-th previous settlement period's energy registers (empty:
        the meter keeps no such period this driver reads)."""
        ...

    def profile_item(self, category: int, start: datetime, count: int) -> Any | None:
        """The item reading up to ``count`` load records of ``category`` from ``start`` (naive,
        meter-local); its values: ``load_profile.rows``, each a dict with ``record.time``
        (``MeterTime``) and the record's values.  None: the meter keeps no load profile."""
        ...

    def key(self, item: Any) -> str:
        """A stable name of ``item`` (the identifier in hex, the register block)."""
        ...

    def quantities(self, item: Any) -> tuple[str, ...]:
        """The canonical quantities ``item`` reads (what is lost when it is unreadable)."""
        ...

    def tracked(self, item: Any) -> bool:
        """Whether a refusal of ``item`` tells what the meter lacks (not "no such record")."""
        ...

    def fallback(self, item: Any) -> Sequence[Any]:
        """Smaller items covering ``item`` when it is unreadable (block → members), or none."""
        ...

    def continuation(self, outcome: Any) -> Callable[[], Exchange] | None:
        """The exchange for the next frame when ``outcome`` says more follow, else None."""
        ...

    def join(self, item: Any, outcomes: Sequence[Any]) -> Any:
        """One outcome from a reply that came in several frames."""
        ...


class Sink(Protocol):
    """Where readings and events go (the local store)."""

    def append_readings(self, readings: Sequence[Reading], command: str | None = None) -> Any: ...

    def append_events(self, events: Sequence[Event]) -> Any: ...


DriverFactory = Callable[[MeterConfig, str], Driver]
FlagsFn = Callable[[], frozenset[str]]


def no_flags() -> frozenset[str]:
    """The default flags hook (``clock_unsynced`` arrives with clock synchronisation)."""
    return frozenset()


def to_value(raw: Any) -> Value | None:
    """A decoded register value as a model value (None for what is not a plain value)."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, Decimal | int | str):
        return raw
    if isinstance(raw, float):
        return Decimal(repr(raw))
    return None


def poll_result_of(
    values: dict[str, Any],
    gateway_time: datetime,
    clock_synced: bool,
    *,
    counts: dict[Counter, int] | None = None,
    meter_time: MeterTime | None = None,
    identity: str | None = None,
) -> PollResult | None:
    """A visit's ``PollResult`` from its values (status words 1-7, the checked energy totals) and
    what the driver read in its own way; None when it carries nothing event detection uses."""
    counts = counts or {}
    words = {
        n: values[f"status.word{n}"]
        for n in range(1, 8)
        if isinstance(values.get(f"status.word{n}"), int)
    }
    energy = {k: v for k, v in values.items() if k in ENERGY_CHECKED and isinstance(v, Decimal)}
    if not (counts or words or energy or meter_time):
        return None
    return PollResult(
        gateway_time,
        meter_time=meter_time,
        counts=counts,
        status_words=words,
        energy=energy,
        identity=identity,
        gateway_clock_synced=clock_synced,
    )
