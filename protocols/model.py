"""The reading model shared by both meter protocols, the MQTT payloads and the head-end.

Time: every timestamp is timezone-aware.  Meters keep local time in their bus's zone (default
Asia/Shanghai); a ``MeterTime`` keeps both the raw wall-clock reading of the meter and its UTC
instant.  A zero or impossible timestamp in a meter record decodes to ``None``, never an error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

DEFAULT_METER_ZONE = "Asia/Shanghai"

Value = Decimal | int | str
"""Energy and money are Decimal; counters int; states (relay, clock) str."""


class ReadingKind(StrEnum):
    """Why a reading was taken."""

    INTERVAL = "interval"  # the regular schedule (e.g. every 15 minutes)
    DAILY_FROZEN = "daily_frozen"  # the meter's own 00:00 snapshot (日冻结), with its freeze time
    ON_DEMAND = "on_demand"  # asked for by the head-end
    LOAD_PROFILE = "load_profile"  # a load record the meter stored (DL/T 645 DI3 = 06), at its time
    SETTLEMENT = "settlement"  # a previous settlement period's registers (月结算), at its instant


class EventType(StrEnum):
    """What happened (events carry the meter's own times where it records them)."""

    METER_COVER_OPEN = "meter_cover_open"
    TERMINAL_COVER_OPEN = "terminal_cover_open"
    POWER_DOWN = "power_down"  # start = power lost, end = power back
    RELAY_CHANGE = "relay_change"
    CLOCK_DRIFT = "clock_drift"
    READING_ANOMALY = "reading_anomaly"  # energy backwards without replacement, reverse energy …
    METER_UNREACHABLE = "meter_unreachable"
    METER_RECOVERED = "meter_recovered"
    GAP_ANNOUNCED = "gap_announced"  # the gateway dropped unacknowledged data (see details)
    UNREGISTERED_METER = "unregistered_meter"
    # a quantity the meter refuses, does not answer, or answers undecodably (details: quantities,
    # identifier, reason refused|unsupported|undecodable); ``QUANTITY_AVAILABLE`` when it answers
    QUANTITY_UNAVAILABLE = "quantity_unavailable"
    QUANTITY_AVAILABLE = "quantity_available"
    # a bus's port was lost / is back (meter "", details: bus, port, reason): sent at once
    LINK_DOWN = "link_down"
    LINK_UP = "link_up"


class Flag(StrEnum):
    """Quality flags attached to readings."""

    CLOCK_UNSYNCED = "clock_unsynced"  # the gateway had not synchronised its own clock
    BACKFILLED = "backfilled"  # read after its time (补抄)
    METER_CLOCK_INVALID = "meter_clock_invalid"


def meter_zone(name: str = DEFAULT_METER_ZONE) -> ZoneInfo:
    """The zone meters on a bus keep their clocks in."""
    return ZoneInfo(name)


@dataclass(frozen=True, slots=True)
class MeterTime:
    """A meter's own timestamp: its raw local wall time and the zone it is kept in."""

    local: datetime  # naive, as the meter shows it
    zone: str = DEFAULT_METER_ZONE

    @property
    def aware(self) -> datetime:
        return self.local.replace(tzinfo=ZoneInfo(self.zone))

    @property
    def utc(self) -> datetime:
        return self.aware.astimezone(UTC)

    @classmethod
    def from_fields(
        cls,
        year: int,
        month: int,
        day: int,
        hour: int = 0,
        minute: int = 0,
        second: int = 0,
        zone: str = DEFAULT_METER_ZONE,
    ) -> MeterTime | None:
        """Build from decoded fields; zero or impossible fields give ``None`` (not an error)."""
        if year < 100:
            year += 2000
        try:
            return cls(datetime(year, month, day, hour, minute, second), zone)
        except ValueError:
            return None

    @classmethod
    def from_utc(cls, instant: datetime, zone: str = DEFAULT_METER_ZONE) -> MeterTime:
        """The local wall time a correctly set meter in ``zone`` shows at ``instant``."""
        if instant.tzinfo is None:
            raise ValueError("instant must be timezone-aware")
        return cls(instant.astimezone(ZoneInfo(zone)).replace(tzinfo=None), zone)


@dataclass(frozen=True, slots=True)
class Reading:
    """One register value of one meter at one time.

    ``meter`` is the meter's communication address (12 digits for DL/T 645, or
    ``"<bus>:<unit id>"``-style ids chosen by the archive for Modbus meters).
    """

    meter: str
    quantity: str
    value: Value
    gateway_time: datetime  # when the gateway took it, aware (UTC)
    kind: ReadingKind = ReadingKind.INTERVAL
    meter_time: datetime | None = None  # the meter's own time, aware, if known
    freeze_time: datetime | None = None  # daily frozen: the meter's freeze time, aware
    flags: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        for name in ("gateway_time", "meter_time", "freeze_time"):
            stamp = getattr(self, name)
            if stamp is not None and stamp.tzinfo is None:
                raise ValueError(f"Reading.{name} must be timezone-aware")


@dataclass(frozen=True, slots=True)
class Event:
    """Something that happened at a meter (or at the gateway, with ``meter`` empty)."""

    meter: str
    type: EventType
    start: datetime | None  # the meter's own record time, aware; None if the meter has none
    end: datetime | None = None
    detected: datetime | None = None  # when the gateway noticed it, aware
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("start", "end", "detected"):
            stamp = getattr(self, name)
            if stamp is not None and stamp.tzinfo is None:
                raise ValueError(f"Event.{name} must be timezone-aware")

    @property
    def key(self) -> str:
        """A stable identity so the same meter record is reported exactly once."""
        start = self.start.isoformat() if self.start else ""
        seq = self.details.get("record_no", "")
        if self.type in (EventType.QUANTITY_UNAVAILABLE, EventType.QUANTITY_AVAILABLE):
            seq = self.details.get("identifier", "")  # one sweep finds several at one time
        return f"{self.meter}|{self.type.value}|{start}|{seq}"
