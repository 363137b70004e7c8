"""Configuration and ground truth of a simulated fleet of transformer areas."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from simulators.errors import SimConfigError
from simulators.grid.households import ARCHETYPES

# What a customer is.  Thefts register less than the customer uses; the rest do not steal.
THEFTS = ("bypass", "cover_open", "neutral_bypass", "relay_bypass", "circuit_bypass")
KINDS = ("healthy", "pv", "vacant", "seasonal", "disconnected", *THEFTS)
DEFAULT_MIX: Mapping[str, float] = {
    "pv": 0.10,
    "vacant": 0.05,
    "seasonal": 0.02,
    "disconnected": 0.03,
    "bypass": 0.03,
    "cover_open": 0.01,
    "neutral_bypass": 0.01,
    "relay_bypass": 0.005,
}


@dataclass(frozen=True)
class GridConfig:
    """A fleet of ``areas`` × ``customers`` over ``days`` at ``step_minutes``.

    ``mix``: the share of each customer kind (the rest healthy); ``mis_mapped``: the share of
    customers the archive places in a wrong area; ``voltage_noise``: standard deviation (V) of a
    meter's voltage measurement before rounding to 0.1 V; ``meter_watts``: each meter's own
    consumption (upstream of its registers: part of the technical loss); ``households``: the
    share of each household archetype among lived-in homes (the rest commuters; e.g.
    ``DEFAULT_HOUSEHOLDS``), None for the single daily template of every home.
    """

    areas: int = 4
    customers: int = 200
    days: int = 7
    step_minutes: int = 15
    start: date = date(2026, 3, 1)
    zone: str = "Asia/Shanghai"
    seed: int = 1
    mix: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_MIX))
    mis_mapped: float = 0.0
    voltage_noise: float = 0.2
    branches: int = 4
    segment_ohm: float = 0.003  # per span between neighbours on a branch (single-phase equivalent)
    transformer_ohm: float = 0.01
    meter_watts: float = 1.5
    pv_area: int | None = None  # an area whose customers are mostly PV (None: none)
    # an area (index) with ``theft_area_meters`` more customers bypassing ``theft_area_fraction``
    # of their use since before the data (the demo's area2); None: none
    theft_area: int | None = None
    theft_area_meters: int = 8
    theft_area_fraction: float = 0.5
    households: Mapping[str, float] | None = None

    def __post_init__(self) -> None:
        if self.areas < 1 or self.customers < 2 or self.days < 1:
            raise SimConfigError("a grid needs at least 1 area, 2 customers and 1 day")
        if 1440 % self.step_minutes:
            raise SimConfigError("step_minutes must divide a day")
        unknown = set(self.mix) - set(KINDS)
        if unknown:
            raise SimConfigError(f"unknown customer kinds {sorted(unknown)}")
        if self.theft_area is not None and not (
            0 <= self.theft_area < self.areas
            and 0 <= self.theft_area_meters <= self.customers
            and 0 < self.theft_area_fraction < 1
        ):
            raise SimConfigError(
                "theft_area: an area index, at most every customer, 0 < fraction < 1"
            )
        if self.households is not None and (
            set(self.households) - set(ARCHETYPES)
            or sum(self.households.values()) > 1 + 1e-9
            or min(self.households.values(), default=0.0) < 0
        ):
            raise SimConfigError(
                f"households: shares (≥ 0, adding up to at most 1) of {', '.join(ARCHETYPES)}"
            )
        if sum(self.mix.values()) > 1 or not 0 <= self.mis_mapped < 0.5:
            raise SimConfigError("shares must add up to at most 1 (mis_mapped below 0.5)")

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.zone)

    @property
    def steps_per_day(self) -> int:
        return 1440 // self.step_minutes

    def boundaries(self) -> list[datetime]:
        """UTC instants of every step boundary, local midnight of ``start`` first."""
        t0 = datetime(self.start.year, self.start.month, self.start.day, tzinfo=self.tz)
        step = timedelta(minutes=self.step_minutes)
        return [(t0 + i * step).astimezone(UTC) for i in range(self.days * self.steps_per_day + 1)]


@dataclass(frozen=True)
class MeterTruth:
    """What a meter really is, whatever the archive or its registers say."""

    meter: str
    area: str  # where it is connected
    mapped_area: str  # where the archive puts it
    kind: str
    fraction: float = 0.0  # share of the customer's energy the meter does not register
    pv_kw: float = 0.0
    role: str = "customer"  # customer | area_total
    household: str = ""  # archetype of a lived-in home (households.ARCHETYPES); "" for none

    @property
    def theft(self) -> bool:
        return self.kind in THEFTS

    @property
    def mis_mapped(self) -> bool:
        return self.area != self.mapped_area


@dataclass
class MeterSeries:
    """What a meter registers and measures: registers at each step boundary (kWh, one more
    value than steps), instantaneous values at the end of each step."""

    import_kwh: list[float]
    export_kwh: list[float]
    voltage: list[float]
    current_live: list[float]
    current_neutral: list[float]
    relay_open: list[bool]
    cover_open_at: list[int] = field(default_factory=list)  # steps with a cover-open event


@dataclass(frozen=True)
class AreaDay:
    """One area's truth over one local day (kWh)."""

    area: str
    day: date
    technical: float  # line I²R and meters' own consumption
    stolen: float  # used by customers but not registered
    supply: float  # area meter import + customers' export (registered)

    @property
    def technical_rate(self) -> float:
        return self.technical / self.supply if self.supply else 0.0


@dataclass
class GridRun:
    """A simulated fleet: the truth and every meter's series."""

    config: GridConfig
    times: list[datetime]  # step boundaries (UTC)
    meters: dict[str, MeterTruth]
    series: dict[str, MeterSeries]
    days: list[AreaDay]
    temperatures: list[float] = field(default_factory=list)  # daily mean °C (with households)

    def area_total(self, area: str) -> str:
        return next(m for m, t in self.meters.items() if t.role == "area_total" and t.area == area)

    def customers(self, area: str | None = None, *, mapped: bool = True) -> list[MeterTruth]:
        """Customer meters of ``area`` (as the archive maps them, or where they truly are)."""
        return [
            t
            for t in self.meters.values()
            if t.role == "customer"
            and (area is None or (t.mapped_area if mapped else t.area) == area)
        ]

    def area_day(self, area: str, day: date) -> AreaDay:
        return next(d for d in self.days if d.area == area and d.day == day)
