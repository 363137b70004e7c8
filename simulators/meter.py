"""The protocol-independent state of one simulated meter, and its ground truth.

State is a pure function of (clock time, load profile seed, dated scenario changes, commands).
A ``Timeline`` carries every dated change; energy is integrated lazily from the load profile::

    true energy        = ∫ load · supplied        (supplied = installed ∧ powered ∧ relay closed)
    registered import  = start + ∫ load · supplied · factor · ¬reversed
    registered export  =         ∫ load · supplied · factor ·  reversed

``factor`` is 1 normally, 0 for a stopped meter, and the registered fraction during a bypass.
A neutral bypass (``neutral_bypass``: the live terminal jumpered, the load's return still through
the meter's neutral) registers ``factor`` too, but the neutral current is the whole load's.
Relay states, remote control, authority and local prepayment: ``simulators.relay``.

Times are epoch seconds (``ts``) inside; the meter's own clock is local wall time in ``zone``
plus an offset and a drift (ppm) from the moment it was last set.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from simulators import firmware
from simulators.energy import ZERO4, EnergySource, LoadIntegral, Timeline, Vec4, add4
from simulators.personalities import ORDINARY, Personality
from simulators.profiles import LoadProfile, uniform
from simulators.relay import Control, Outcome, Prepay, Relay, RelayControl

FROZEN_DAYS = 62
NOMINAL_VOLTAGE = 220.0


class Cover(StrEnum):
    """Covers whose opening the meter records."""

    METER = "meter_cover"
    TERMINAL = "terminal_cover"


@dataclass(frozen=True, slots=True)
class CoverRecord:
    """One cover opening: start, end (None while open) and the energies around it."""

    cover: Cover
    start: float
    end: float | None


@dataclass(frozen=True, slots=True)
class Frozen:
    """One daily frozen record: freeze time (meter local) and register values."""

    local_time: datetime
    instant: float
    import_kwh: Vec4
    export_kwh: Vec4


@dataclass
class MeterSpec:
    """How a meter is built (the fleet file's ``[[meters]]`` row, resolved)."""

    address: str
    protocol: str = "dlt645-2007"  # dlt645-2007 | dlt645-1997 | dlt698 | modbus
    model: str = ""
    profile: LoadProfile = field(default_factory=LoadProfile)
    start_reading: float = 0.0
    passwords: dict[int, str] = field(default_factory=lambda: {2: "000000", 4: "000000"})
    control_level: int = 2  # the lowest authority (highest level number) allowed to control
    write_level: int = 4
    operators: tuple[str, ...] = ()  # accepted operator codes; empty = any
    response_delay_ms: float = 50.0
    zone: str = "Asia/Shanghai"
    installed_at: float = -float("inf")
    removed_at: float = float("inf")
    prepay: Prepay | None = None
    clock_offset_s: float = 0.0
    drift_ppm: float = 0.0
    role: str = "customer"
    id: str = ""  # the archive id (defaults to the address; Modbus: "bus:unit")
    personality: Personality = ORDINARY


class Meter(RelayControl):
    """One simulated meter: state, commands and ground truth (see module docstring)."""

    def __init__(self, spec: MeterSpec, origin: float, source: EnergySource | None = None) -> None:
        self.spec = spec
        self.address = spec.address
        self.id = spec.id or spec.address
        self.zone = ZoneInfo(spec.zone)
        origin_day = datetime.fromtimestamp(origin, self.zone).date() - timedelta(
            days=FROZEN_DAYS + 2
        )
        self.integral = LoadIntegral(spec.profile, self.zone, origin_day)
        self.origin = self.integral.midnight(origin_day)
        self.source: EnergySource = source or self.integral  # what flows through the meter
        self.timeline = Timeline(
            installed=False,
            powered=True,
            relay=Relay.CLOSED,
            factor=1.0,
            reversed=False,
            neutral_bypass=False,
        )
        self.timeline.set(max(spec.installed_at, self.origin), installed=True)
        if spec.removed_at < float("inf"):
            self.timeline.set(spec.removed_at, installed=False)
        self.keep_power = False
        self.alarm = False
        self.prepay = spec.prepay
        if self.prepay is not None:
            self.prepay.since = self.prepay.checked_to = max(self.origin, spec.installed_at)
        self.covers: list[CoverRecord] = []
        self.relay_log: list[tuple[float, str, str]] = []  # (ts, new state, why)
        self.pending_trip: tuple[float, float] | None = None  # (commanded, opens)
        self.sync_log: list[tuple[float, date, str]] = []  # broadcast syncs: ts, day, outcome
        self.reads: dict[str, dict[str, int]] = {}  # identifier → outcome → count (truth)
        self.clock_offset = spec.clock_offset_s
        self.drift_ppm = spec.drift_ppm
        self.clock_ref = self.origin
        split = uniform(spec.profile.seed, 0x57A27)
        weights = (0.05 + 0.1 * split, 0.3, 0.35, 0.3 - 0.1 * split)
        self.start_split: Vec4 = (
            spec.start_reading * weights[0],
            spec.start_reading * weights[1],
            spec.start_reading * weights[2],
            spec.start_reading * weights[3],
        )

    # -- ground truth -------------------------------------------------------------------------
    def _supplied(self, state: dict[str, Any]) -> float:
        return float(state["installed"] and state["powered"] and state["relay"] == Relay.CLOSED)

    def true_kwh(self, a: float, b: float) -> Vec4:
        """Energy the customer's load really consumed through this meter in ``[a, b]``."""
        self.settle(b)
        return self.timeline.integrate(self.source.cumulative, self._supplied, a, b)

    def true_cumulative(self, ts: float) -> Vec4:
        """True energy through this meter from its origin to ``ts`` (the area total's input)."""
        self.settle(ts)
        return self.timeline.integrate(self.source.cumulative, self._supplied, self.origin, ts)

    def registered(self, ts: float) -> tuple[Vec4, Vec4]:
        """Import and export registers (per tariff, kWh) the meter shows at ``ts``."""
        self.settle(ts)
        cumulative = self.source.cumulative
        imp = self.timeline.integrate(
            cumulative,
            lambda s: self._supplied(s) * s["factor"] * (not s["reversed"]),
            self.origin,
            ts,
        )
        exp = self.timeline.integrate(
            cumulative, lambda s: self._supplied(s) * s["factor"] * s["reversed"], self.origin, ts
        )
        return add4(self.start_split, imp), exp

    def state(self, ts: float) -> dict[str, Any]:
        """The timeline state at ``ts``."""
        self.settle(ts)
        return self.timeline.at(ts)

    def installed(self, ts: float) -> bool:
        """Whether the meter is on the bus at ``ts``."""
        return bool(self.timeline.at(ts)["installed"])

    def answers(self, ts: float) -> bool:
        """Whether the meter can talk at ``ts`` (installed and powered)."""
        state = self.timeline.at(ts)
        return bool(state["installed"] and state["powered"])

    def relay(self, ts: float) -> Relay:
        """Relay state at ``ts``."""
        return Relay(self.state(ts)["relay"])

    # -- instantaneous values -----------------------------------------------------------------
    def true_power_kw(self, ts: float) -> float:
        """Power the load really draws through this meter at ``ts``."""
        return self.source.power_kw(ts) * self._supplied(self.state(ts))

    def power_kw(self, ts: float) -> float:
        """Active power the meter measures (negative when wired in reverse)."""
        state = self.state(ts)
        p = float(self.source.power_kw(ts) * self._supplied(state) * state["factor"])
        return -p if state["reversed"] else p

    def voltage(self, ts: float) -> float:
        """Phase voltage (seeded ±2 % around 220 V, varying per 15-minute slot)."""
        if not self.answers(ts):
            return 0.0
        return NOMINAL_VOLTAGE * (0.98 + 0.04 * uniform(self.spec.profile.seed, int(ts // 900), 7))

    def power_factor(self, ts: float) -> float:
        """Power factor (signed like the power)."""
        pf = self.spec.profile.power_factor
        return -pf if self.state(ts)["reversed"] else pf

    def current(self, ts: float) -> float:
        """Phase current consistent with P = U · I · cos φ (signed like the power)."""
        voltage = self.voltage(ts)
        if voltage == 0:
            return 0.0
        return self.power_kw(ts) * 1000.0 / (voltage * self.spec.profile.power_factor)

    def neutral_current(self, ts: float) -> float:
        """Neutral current of a single-phase meter: the live current's size, or the whole load's
        under a neutral bypass (the jumper carries part of the live side only)."""
        voltage = self.voltage(ts)
        if voltage == 0:
            return 0.0
        if not self.state(ts)["neutral_bypass"]:
            return abs(self.current(ts))
        return self.true_power_kw(ts) * 1000.0 / (voltage * self.spec.profile.power_factor)

    def frequency(self, ts: float) -> float:
        """Grid frequency (50 Hz ± 0.05)."""
        return 50.0 + 0.1 * (uniform(self.spec.profile.seed, int(ts // 60), 11) - 0.5)

    # -- the meter's clock --------------------------------------------------------------------
    def meter_time(self, ts: float) -> datetime:
        """The meter's own local wall time at ``ts`` (naive), with offset and drift."""
        skew = self.clock_offset + self.drift_ppm * 1e-6 * (ts - self.clock_ref)
        return datetime.fromtimestamp(ts + skew, self.zone).replace(tzinfo=None)

    def set_time(self, ts: float, local: datetime) -> None:
        """Set the meter's clock to ``local`` (naive, meter zone) at ``ts`` (time sync)."""
        self.clock_offset = local.replace(tzinfo=self.zone).timestamp() - ts
        self.clock_ref = ts

    def _instant_of_local(self, ts: float, local: datetime) -> float:
        """The true instant at which the meter's clock shows ``local`` (current skew)."""
        skew = self.clock_offset + self.drift_ppm * 1e-6 * (ts - self.clock_ref)
        return local.replace(tzinfo=self.zone).timestamp() - skew

    # -- daily frozen -------------------------------------------------------------------------
    def frozen(self, n: int, ts: float) -> Frozen | None:
        """The n-th last daily freeze (1 = most recent) as seen at ``ts``; None if none."""
        if not 1 <= n <= FROZEN_DAYS:
            return None
        today = self.meter_time(ts).date()
        local = datetime.combine(today - timedelta(days=n - 1), datetime.min.time())
        instant = self._instant_of_local(ts, local)
        if instant < self.origin or instant < self.spec.installed_at or instant > ts:
            return None
        imp, exp = self.registered(instant)
        return Frozen(local, instant, imp, exp)

    # -- events -------------------------------------------------------------------------------
    def open_cover(self, cover: Cover, start: float, end: float | None = None) -> None:
        """Record a cover opening from ``start`` (closing at ``end`` if given)."""
        self.covers.append(CoverRecord(cover, start, end))
        self.covers.sort(key=lambda r: r.start)

    def close_cover(self, cover: Cover, ts: float) -> bool:
        """Close the latest open record of ``cover``; False if none is open."""
        for i in range(len(self.covers) - 1, -1, -1):
            rec = self.covers[i]
            if rec.cover == cover and rec.end is None and rec.start <= ts:
                self.covers[i] = CoverRecord(cover, rec.start, ts)
                return True
        return False

    def cover_records(self, cover: Cover, ts: float) -> list[CoverRecord]:
        """Records of ``cover`` started by ``ts``, most recent first (end hidden until reached)."""
        out = []
        for rec in reversed(self.covers):
            if rec.cover == cover and rec.start <= ts:
                end = rec.end if rec.end is not None and rec.end <= ts else None
                out.append(CoverRecord(cover, rec.start, end))
        return out

    def cover_open(self, cover: Cover, ts: float) -> bool:
        """Whether ``cover`` is open at ``ts``."""
        records = self.cover_records(cover, ts)
        return bool(records) and records[0].end is None

    def power_downs(self, ts: float) -> list[tuple[float, float | None]]:
        """Power-down records (start, end or None) started by ``ts``, most recent first."""
        out: list[tuple[float, float | None]] = []
        start: float | None = None
        for when, powered in self.timeline.changes("powered"):
            if when > ts:
                break
            if not powered and start is None:
                start = when
            elif powered and start is not None:
                out.append((start, when))
                start = None
        if start is not None:
            out.append((start, None))
        return out[::-1]

    def set_power(self, ts: float, on: bool) -> None:
        """Power the meter (and its customer's supply) down or back up at ``ts``."""
        self.timeline.set(ts, powered=on)

    def schedule(self, ts: float, **fields: Any) -> None:
        """Change scenario fields (``factor``, ``reversed``, ``installed``) from ``ts`` on."""
        self.timeline.set(ts, **fields)

    def broadcast_time(self, ts: float, when: datetime) -> str:
        """A broadcast time sync at ``ts``: applied if the firmware accepts it; the outcome."""
        outcome = firmware.broadcast_outcome(self, ts, when)
        self.sync_log.append((ts, self.meter_time(ts).date(), outcome))
        if outcome == firmware.ACCEPTED:
            self.set_time(ts, when)
        return outcome

    def busy(self, ts: float) -> bool:
        """Whether the meter is too busy to answer at ``ts`` (its daily freeze)."""
        return firmware.busy(self, ts)

    # -- status -------------------------------------------------------------------------------
    def status_words(self, ts: float) -> tuple[int, ...]:
        """DL/T 645 status words 1–7 at ``ts``."""
        state = self.state(ts)
        sw1 = 0x0010 if state["reversed"] and self.power_kw(ts) != 0 else 0
        sw3 = 0
        if state["relay"] != Relay.CLOSED:
            sw3 |= 1 << 4
        if state["relay"] == Relay.OPEN or self.trip_pending(ts):
            sw3 |= 1 << 6  # relay commanded to trip (at once; the relay may follow later)
        if self.prepay is not None:
            sw3 |= 1 << 9  # money prepay
            balance = self.balance(ts) or 0.0
            if balance < self.prepay.alarm_below:
                sw3 |= 1 << 7
        if self.alarm:
            sw3 |= 1 << 7
        if self.keep_power:
            sw3 |= 1 << 12
        sw4 = 0x0040 if state["reversed"] else 0
        sw7 = 0
        if not state["powered"]:
            sw7 |= 1 << 5
        if self.cover_open(Cover.METER, ts):
            sw7 |= 1 << 9
        if self.cover_open(Cover.TERMINAL, ts):
            sw7 |= 1 << 10
        return (sw1, 0x0001 if state["reversed"] else 0, sw3, sw4, 0, 0, sw7)

    def local_date(self, ts: float) -> date:
        """The meter's local date at ``ts``."""
        return self.meter_time(ts).date()


def total(vec: Vec4) -> float:
    """Sum over tariffs."""
    return vec[0] + vec[1] + vec[2] + vec[3]


__all__ = [
    "FROZEN_DAYS",
    "ZERO4",
    "Control",
    "Cover",
    "CoverRecord",
    "Frozen",
    "Meter",
    "MeterSpec",
    "Outcome",
    "Prepay",
    "Relay",
    "total",
]
