"""A running fleet: areas × buses × meters from a ``FleetConfig``, for the CLI and for tests.

```python
from simulators.fleet import start_fleet
from simulators.config import quick_config

async with start_fleet(quick_config(meters=5)) as fleet:
    url = fleet.endpoints["bus1"]                 # "socket://127.0.0.1:PORT" for pyserial
    fleet.control.set_faults("bus1", drop=0.2)    # the control surface, no HTTP needed
    truth = fleet.control.truth_meter("202611240001", t0, t1)
```
Every meter's state is a pure function of the clock, its seed and the dated changes (see
``simulators.meter``); the fleet only wires meters to buses, buses to endpoints, and keeps the
area total meter's load equal to Σ true customer loads × (1 + technical loss).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from simulators.bus import Bus, Listener
from simulators.config import BusModel, FleetConfig, MeterModel, ScenarioModel
from simulators.dlt645.meter import Dlt645Listener, protocol_version
from simulators.dlt698.meter import Dlt698Listener
from simulators.endpoints import Gate, PtyEndpoint, TapEndpoint, TcpEndpoint
from simulators.energy import ZERO4, Vec4, add4, scale4
from simulators.errors import ControlError
from simulators.esam import SoftwareEsam, read_master_key
from simulators.faults import Faults
from simulators.line import LineSettings
from simulators.meter import Cover, Meter, MeterSpec, Prepay
from simulators.modbus.meter import ModbusListener
from simulators.profiles import DEFAULT_TOU, LoadProfile, TouTable
from taiqu.clock import Clock, make_clock

if TYPE_CHECKING:
    from simulators.control import FleetControl

_MEAN_KW = {"residential": 0.8, "commercial": 6.0, "flat": 1.0}


class AreaLoad:
    """What flows through an area total meter: Σ true customer loads × (1 + loss)."""

    def __init__(self, customers: list[Meter], loss: float) -> None:
        self.customers = customers
        self.loss = loss

    def cumulative(self, ts: float) -> Vec4:
        """Energy per tariff since the origin."""
        acc = ZERO4
        for meter in self.customers:
            acc = add4(acc, meter.true_cumulative(ts))
        return scale4(acc, 1.0 + self.loss)

    def power_kw(self, ts: float) -> float:
        """Power at ``ts``."""
        return sum(m.true_power_kw(ts) for m in self.customers) * (1.0 + self.loss)


@dataclass
class Area:
    """A transformer area: its customers, its total meter and its technical loss ratio."""

    name: str
    gateway_id: str
    loss: float
    customers: list[Meter] = field(default_factory=list)
    total_meter: Meter | None = None
    buses: list[str] = field(default_factory=list)


class Fleet:
    """Areas, buses and meters built from a config; ``start()`` opens the endpoints."""

    def __init__(self, config: FleetConfig, clock: Clock | None = None) -> None:
        self.config = config
        self._row_faults: dict[str, Faults] = {}
        self._control: FleetControl | None = None
        self.clock = clock or make_clock(config.clock)
        self.started_at = self.clock.now().timestamp()
        self.tou = TouTable.parse(config.tou) if config.tou else DEFAULT_TOU
        self.meters: dict[str, Meter] = {}  # by meter id
        self.meter_bus: dict[str, str] = {}
        self.meter_area: dict[str, str] = {}
        self.meter_line: dict[str, LineSettings | None] = {}  # None: the bus's settings
        self.areas: dict[str, Area] = {
            a.name: Area(a.name, a.gateway_id or f"gw-{i + 1:04d}", a.technical_loss)
            for i, a in enumerate(config.areas)
        }
        self.buses: dict[str, Bus] = {}
        self.endpoints: dict[str, str] = {}
        self._endpoints: dict[str, TcpEndpoint | PtyEndpoint] = {}
        self._extra_endpoints: list[TcpEndpoint | TapEndpoint] = []
        self.rfc2217: dict[str, str] = {}  # bus → "rfc2217://host:port"
        self.taps: dict[str, str] = {}  # bus → "socket://host:port" of its sniffer copy
        self.control_url = ""
        self._http: object | None = None
        self.esams: dict[str, SoftwareEsam] = {}  # by meter address: rows with esam = true
        master = read_master_key(config.esam.key_file) if config.esam is not None else b""
        by_bus: dict[str, list[Meter]] = {b.name: [] for b in config.buses}
        totals: list[tuple[MeterModel, str]] = []
        for row in config.meters:
            for i, address in enumerate(row.addresses()):
                if row.role == "area_total":
                    totals.append((row, address))
                    continue
                for meter in self._build(row, i, address):
                    by_bus[row.bus].append(meter)
                if row.esam and config.esam is not None:
                    self.esams[address] = SoftwareEsam(
                        master, address, config.esam.window_s, config.esam.max_failures
                    )
        for row, address in totals:
            area = self.areas[self._bus_model(row.bus).area]
            source = AreaLoad(area.customers, area.loss)
            meter = self._build(row, 0, address, source=source)[0]
            area.total_meter = meter
            by_bus[row.bus].append(meter)
        for b in config.buses:
            self.areas[b.area].buses.append(b.name)
            line = LineSettings(b.baud, b.parity, b.bytesize, b.stopbits)
            listeners = self._listeners(by_bus[b.name], line)
            bus = Bus(
                b.name,
                self.clock,
                listeners,
                baud=b.baud,
                parity=b.parity,
                bytesize=b.bytesize,
                stopbits=b.stopbits,
                pace=b.pace,
                faults=Faults(**b.faults.model_dump()),
                seed=b.seed or config.seed,
            )
            for ident, row_faults in self._row_faults.items():
                if self.meter_bus[ident] == b.name and row_faults.any:
                    bus.meter_faults[self.meters[ident].address] = row_faults
            self.buses[b.name] = bus

    def _bus_model(self, name: str) -> BusModel:
        return next(b for b in self.config.buses if b.name == name)

    def _build(
        self, row: MeterModel, i: int, address: str, source: AreaLoad | None = None
    ) -> list[Meter]:
        seed = (row.seed if row.seed is not None else self.config.seed * 100_003) + i
        mean_kw = row.mean_kw if row.mean_kw is not None else _MEAN_KW[row.profile]
        profile = LoadProfile(row.profile, mean_kw, seed, row.noise, row.power_factor, self.tou)
        start = row.start_reading if row.start_reading is not None else 1000.0 + (seed % 97) * 53.0
        ident = f"{row.bus}:{address}" if row.protocol == "modbus" else address
        personality = row.resolved_personality()
        delay = row.response_delay_ms
        if (
            personality.response_delay_ms is not None
            and "response_delay_ms" not in row.model_fields_set
        ):
            delay = personality.response_delay_ms
        drift_ppm = row.drift_ppm + personality.drift_min_per_day * 60 / 86400 * 1e6
        spec = MeterSpec(
            personality=personality,
            address=address,
            protocol=row.protocol,
            model=row.model,
            profile=profile,
            start_reading=start,
            passwords={int(k): v for k, v in row.passwords.items()},
            control_level=row.control_level,
            write_level=row.write_level,
            operators=tuple(row.operators),
            response_delay_ms=delay,
            zone=self.config.zone,
            prepay=Prepay(**row.prepay.model_dump()) if row.prepay else None,
            clock_offset_s=row.clock_offset_s,
            drift_ppm=drift_ppm,
            role=row.role,
            id=ident,
        )
        meter = Meter(spec, self.started_at, source)
        built = [meter]
        self._register(meter, row)
        for scenario in row.scenarios:
            extra = self.apply_scenario(meter, scenario)
            if extra is not None:
                self._register(extra, row)
                built.append(extra)
        return built

    def _register(self, meter: Meter, row: MeterModel) -> None:
        if meter.id in self.meters:
            raise ControlError(f"meter id {meter.id} is used twice")
        self.meters[meter.id] = meter
        self.meter_bus[meter.id] = row.bus
        line = row.line or meter.spec.personality.line
        self.meter_line[meter.id] = LineSettings.parse(line) if line else None
        area = self._bus_model(row.bus).area
        self.meter_area[meter.id] = area
        if row.role == "customer":
            self.areas[area].customers.append(meter)
        self._row_faults[meter.id] = Faults(**row.faults.model_dump())

    def when(self, scenario: ScenarioModel) -> float:
        """The epoch seconds a scenario starts."""
        if scenario.at is not None:
            return scenario.at.timestamp()
        return self.started_at + (scenario.after_s or 0.0)

    def apply_scenario(self, meter: Meter, scenario: ScenarioModel) -> Meter | None:
        """Schedule a scenario on ``meter``; a replacement returns the new meter."""
        at = self.when(scenario)
        until: float | None = None
        if scenario.until is not None:
            until = scenario.until.timestamp()
        elif scenario.duration_s is not None:
            until = at + scenario.duration_s
        kind = scenario.kind
        if kind in ("meter_cover_open", "terminal_cover_open"):
            meter.open_cover(
                Cover.METER if kind == "meter_cover_open" else Cover.TERMINAL, at, until
            )
        elif kind == "reverse":
            meter.schedule(at, reversed=True)
        elif kind == "stopped":
            meter.schedule(at, factor=0.0)
        elif kind == "bypass":
            meter.schedule(at, factor=scenario.fraction)
        elif kind == "neutral_bypass":
            meter.schedule(at, factor=scenario.fraction, neutral_bypass=True)
        elif kind == "power_down":
            meter.set_power(at, False)
            if until is not None:
                meter.set_power(until, True)
        elif kind == "replace":
            return self._replace(meter, at, scenario.new_address or "", scenario.start_reading)
        if until is not None and kind in ("reverse", "stopped", "bypass", "neutral_bypass"):
            meter.schedule(until, reversed=False, factor=1.0, neutral_bypass=False)
        return None

    def _replace(self, old: Meter, at: float, address: str, start_reading: float) -> Meter:
        old.schedule(at, installed=False)
        spec = old.spec
        ident = address if spec.protocol != "modbus" else f"{spec.id.split(':')[0]}:{address}"
        new_spec = MeterSpec(
            **{**spec.__dict__, "address": address, "id": ident, "start_reading": start_reading,
               "installed_at": at, "prepay": None}
        )  # fmt: skip
        return Meter(new_spec, self.started_at)

    def _listeners(self, meters: list[Meter], bus_line: LineSettings) -> list[Listener]:
        """One listener per protocol and line setting (each hears the line at its settings)."""
        groups: dict[tuple[str, LineSettings], list[Meter]] = {}
        for meter in meters:
            line = self.meter_line.get(meter.id) or bus_line
            groups.setdefault((meter.spec.protocol, line), []).append(meter)
        out: list[Listener] = []
        for (protocol, line), group in groups.items():
            listener: Dlt645Listener | Dlt698Listener | ModbusListener
            if protocol == "modbus":
                listener = ModbusListener(group)
            elif protocol == "dlt698":
                listener = Dlt698Listener(group)
            else:
                listener = Dlt645Listener(protocol_version(protocol), group, line.baud)
                for meter in group:
                    if meter.address in self.esams:
                        listener.add_esam(self.esams[meter.address])
            listener.line = line
            out.append(listener)
        return out

    # -- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        """Warm every meter's history (as a real meter has it ready), then open the endpoints."""
        now = self.clock.now().timestamp()
        for meter in self.meters.values():
            meter.registered(now)
        for b in self.config.buses:
            bus = self.buses[b.name]
            gate = Gate()
            endpoint: TcpEndpoint | PtyEndpoint
            if b.listen == "pty":
                endpoint = PtyEndpoint(bus.serve)
            else:
                host, _, port = b.listen[6:].rpartition(":")
                endpoint = TcpEndpoint(bus.serve, host.strip("[]"), int(port), b.name, gate=gate)
            await endpoint.start()
            self._endpoints[b.name] = endpoint
            self.endpoints[b.name] = endpoint.url
            if b.rfc2217:
                await self._start_rfc2217(b, bus, gate)
            if b.tap:
                await self._start_tap(b, bus)

    async def _start_rfc2217(self, b: BusModel, bus: Bus, gate: Gate) -> None:
        """Serve the bus also over RFC 2217 (``rfc2217://``), sharing the one-master gate."""
        from simulators.rfc2217 import Rfc2217Endpoint

        host, _, port = b.rfc2217.rpartition(":")
        endpoint = Rfc2217Endpoint(
            bus.serve, bus.line, bus.set_master_line, host.strip("[]"), int(port), gate=gate
        )
        await endpoint.start()
        self._extra_endpoints.append(endpoint)
        self.rfc2217[b.name] = endpoint.url

    async def _start_tap(self, b: BusModel, bus: Bus) -> None:
        """A listen-only copy of the bus's traffic (``taiqu field monitor`` in the tests)."""
        host, _, port = b.tap.rpartition(":")
        tap = TapEndpoint(host.strip("[]"), int(port), b.name)
        await tap.start()
        bus.taps.append(tap.feed)
        self._extra_endpoints.append(tap)
        self.taps[b.name] = tap.url

    async def start_control(self, listen: str | None = None) -> str:
        """Serve the JSON-over-HTTP control interface on loopback; returns its URL."""
        from simulators.control_http import ControlServer

        server = ControlServer(self.control, listen or self.config.control)
        await server.start()
        self._http = server
        self.control_url = server.url
        return server.url

    async def stop(self) -> None:
        """Close every endpoint and the control interface."""
        for endpoint in [*self._endpoints.values(), *self._extra_endpoints]:
            await endpoint.stop()
        self._endpoints.clear()
        self._extra_endpoints.clear()
        if self._http is not None:
            await self._http.stop()  # type: ignore[attr-defined]
            self._http = None

    # -- lookups ------------------------------------------------------------------------------
    def meter(self, ident: str) -> Meter:
        """A meter by id (DL/T 645 address, or ``bus:unit`` for Modbus)."""
        meter = self.meters.get(ident)
        if meter is None:
            raise ControlError(f"unknown meter {ident!r}")
        return meter

    def bus_of(self, ident: str) -> Bus:
        """The bus a meter sits on."""
        self.meter(ident)
        return self.buses[self.meter_bus[ident]]

    @property
    def control(self) -> FleetControl:
        """The control surface (Python API; the HTTP interface calls the same methods)."""
        if self._control is None:
            from simulators.control import FleetControl

            self._control = FleetControl(self)
        return self._control

    def now(self) -> datetime:
        """The fleet clock's time."""
        return self.clock.now()


@contextlib.asynccontextmanager
async def start_fleet(
    config: FleetConfig, clock: Clock | None = None, *, control_http: bool = False
) -> AsyncIterator[Fleet]:
    """Build, start and (on exit) stop a fleet; ``control_http`` also serves the HTTP control."""
    fleet = Fleet(config, clock)
    await fleet.start()
    try:
        if control_http:
            await fleet.start_control()
        yield fleet
    finally:
        await fleet.stop()
