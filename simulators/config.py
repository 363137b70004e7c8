"""The fleet file (``taiqu sim serve --config fleet.toml``): areas × buses × meters with scenarios.

```toml
clock = { start = 2026-03-01T00:00:00+08:00, factor = 60 }   # or "real" (the default)
zone = "Asia/Shanghai"
control = "127.0.0.1:8765"          # JSON-over-HTTP control interface ("" = off; port 0 = any)
tou = { "00:00" = 4, "08:00" = 3, "10:00" = 2, "12:00" = 3, "17:00" = 2, "19:00" = 1 }

[[areas]]
name = "area1"
gateway_id = "gw-0001"
technical_loss = 0.04               # area total = Σ true customer loads × (1 + loss)

[[buses]]
name = "bus1"
area = "area1"
listen = "tcp://127.0.0.1:7001"     # or "pty"
baud = 2400
parity = "E"
pace = true                         # false: no wire time (accelerated clocks)
faults = { noise = 3 }
rfc2217 = "127.0.0.1:0"             # also served over RFC 2217 ("" = off)
tap = ""                            # "127.0.0.1:0": a sniffer's copy of all traffic

[[meters]]
bus = "bus1"
protocol = "dlt645-2007"            # dlt645-2007 | dlt645-1997 | dlt698 | modbus
address = "202611240001"            # Modbus: the unit id, "7"
count = 20                          # 20 meters, consecutive addresses and seeds
profile = "residential"             # residential | commercial | flat
mean_kw = 0.8
seed = 1
faults = { drop = 0.1 }
scenarios = [{ kind = "bypass", at = 2026-03-01T12:00:00+08:00, fraction = 0.3 }]

[[meters]]
bus = "bus1"
address = "202611249999"
role = "area_total"

[[meters]]
bus = "bus1"
address = "199700000001"
personality = "dlt645-1997"         # simulators/personalities/*.toml; sets protocol and line
personality_overrides = { busy_after_midnight_s = 30 }
line = "1200 8E1"                   # the meter's own serial settings (default: personality, bus)

[esam]                              # the software ESAM of meters with esam = true (laboratory)
key_file = "esam-lab.key"           # the master key the head-end's laboratory service uses
window_s = 300                      # authentication validity; max_failures = 15 a day

[[meters]]
bus = "bus1"
address = "202611240100"
esam = true                         # a cost-control meter: plaintext control refused
```
Scenario kinds: ``meter_cover_open`` / ``terminal_cover_open`` (``until`` or ``duration_s``),
``reverse``, ``stopped``, ``bypass`` (``fraction`` registered), ``neutral_bypass`` (``fraction``
registered, the neutral current stays the whole load's), ``power_down`` (``until``),
``replace`` (``new_address``, ``start_reading``).  Times are ``at`` (with a UTC offset) or
``after_s`` seconds after the fleet starts.
"""

from __future__ import annotations

import tomllib
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from simulators.errors import SimConfigError
from simulators.line import LineSettings
from simulators.personalities import Personality, load_personality
from taiqu.clock import AcceleratedSetting

Protocol = Literal["dlt645-2007", "dlt645-1997", "dlt698", "modbus"]
MODBUS_MODELS = ("SDM120", "SDM630", "DDSU666", "DTSU666")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FaultsModel(_Strict):
    """Wire faults (see ``simulators.faults``)."""

    silent: bool = False
    drop: float = Field(0.0, ge=0, le=1)
    corrupt: float = Field(0.0, ge=0, le=1)
    late_ms: float = Field(0.0, ge=0)
    wrong_address: bool = False
    echo: bool = False
    noise: int = Field(0, ge=0, le=256)


class ScenarioModel(_Strict):
    """A dated scenario for one meter (ground truth records its effect)."""

    kind: Literal[
        "meter_cover_open",
        "terminal_cover_open",
        "reverse",
        "stopped",
        "bypass",
        "neutral_bypass",
        "power_down",
        "replace",
    ]
    at: datetime | None = None
    after_s: float | None = None
    until: datetime | None = None
    duration_s: float | None = Field(None, gt=0)
    fraction: float = Field(0.5, ge=0, le=1)
    new_address: str | None = None
    start_reading: float = Field(0.0, ge=0)

    @model_validator(mode="after")
    def _when(self) -> ScenarioModel:
        if (self.at is None) == (self.after_s is None):
            raise ValueError("give exactly one of 'at' (with a UTC offset) or 'after_s'")
        for stamp in (self.at, self.until):
            if stamp is not None and stamp.tzinfo is None:
                raise ValueError("times must carry a UTC offset, e.g. 2026-03-01T12:00:00+08:00")
        if self.kind == "replace" and not self.new_address:
            raise ValueError("a 'replace' scenario needs 'new_address'")
        return self


class PrepayModel(_Strict):
    """Local prepayment (off unless present)."""

    balance: float = 100.0
    prices: tuple[float, float, float, float] = (0.8, 0.65, 0.55, 0.35)
    alarm_below: float = 20.0
    overdraft: float = Field(0.0, ge=0)


class EsamModel(_Strict):
    """``[esam]``: the software ESAM of meters with ``esam = true`` (``simulators.esam``)."""

    key_file: Path  # 32 hex digits, mode 0600: the head-end's laboratory master key
    window_s: float = Field(300.0, gt=0)
    max_failures: int = Field(15, ge=1)


class MeterModel(_Strict):
    """One ``[[meters]]`` row (``count`` > 1 expands to consecutive addresses and seeds)."""

    personality: str = "ordinary"  # a file of simulators/personalities (see docs/simulators.md)
    personality_overrides: dict[str, Any] = Field(default_factory=dict)
    line: str | None = (
        None  # "1200 8E1": the meter's own serial settings (default: personality, bus)
    )
    bus: str
    protocol: Protocol = "dlt645-2007"
    address: str
    model: str = ""
    count: int = Field(1, ge=1, le=100_000)
    role: Literal["customer", "area_total"] = "customer"
    profile: Literal["residential", "commercial", "flat"] = "residential"
    mean_kw: float | None = Field(None, ge=0)
    noise: float = Field(0.2, ge=0, lt=1)
    power_factor: float = Field(0.95, gt=0, le=1)
    seed: int | None = None
    start_reading: float | None = Field(None, ge=0)
    response_delay_ms: float = Field(50.0, ge=0, le=5000)
    passwords: dict[str, str] = Field(default_factory=lambda: {"02": "000000", "04": "000000"})
    control_level: int = Field(2, ge=0, le=9)
    write_level: int = Field(4, ge=0, le=9)
    operators: list[str] = Field(default_factory=list)
    esam: bool = False  # a cost-control meter with a software ESAM (needs the fleet's [esam])
    prepay: PrepayModel | None = None
    faults: FaultsModel = Field(default_factory=FaultsModel)
    drift_ppm: float = 0.0
    clock_offset_s: float = 0.0
    scenarios: list[ScenarioModel] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _personality_defaults(cls, data: Any) -> Any:
        """Protocol and Modbus model come from the personality when the row does not say."""
        if isinstance(data, dict) and data.get("personality"):
            try:
                found = load_personality(str(data["personality"]))
            except SimConfigError as exc:
                raise ValueError(str(exc)) from None
            data = dict(data)
            if found.protocol and "protocol" not in data:
                data["protocol"] = found.protocol
            if found.model and not data.get("model"):
                data["model"] = found.model
        return data

    def resolved_personality(self) -> Personality:
        """The personality with this row's overrides applied."""
        return load_personality(self.personality).with_overrides(self.personality_overrides)

    @model_validator(mode="after")
    def _address(self) -> MeterModel:
        try:
            personality = self.resolved_personality()
            if self.line is not None:
                LineSettings.parse(self.line)
        except SimConfigError as exc:
            raise ValueError(str(exc)) from None
        if personality.protocol and personality.protocol != self.protocol:
            raise ValueError(
                f"personality {self.personality!r} is a {personality.protocol} meter, "
                f"the row says protocol {self.protocol!r}"
            )
        if self.protocol == "modbus":
            if not self.address.isdigit() or not 1 <= int(self.address) + self.count - 1 <= 247:
                raise ValueError("a Modbus address is a unit id 1…247 (with count, all of them)")
            if self.model.upper() not in MODBUS_MODELS:
                raise ValueError(f"Modbus 'model' must be one of {', '.join(MODBUS_MODELS)}")
            self.model = self.model.upper()
        else:
            if len(self.address) != 12 or not self.address.isdigit():
                raise ValueError("a DL/T 645 address is 12 decimal digits, e.g. '202611240001'")
            if self.address == "999999999999":
                raise ValueError("999999999999 is the broadcast address")
        if self.esam and self.protocol != "dlt645-2007":
            raise ValueError("only DL/T 645-2007 meters have an ESAM")
        for level, password in self.passwords.items():
            if not level.isdigit() or len(password) != 6 or not password.isdigit():
                raise ValueError("passwords map a level ('02') to 6 digits ('123456')")
        return self

    def addresses(self) -> list[str]:
        """The addresses this row expands to."""
        width = len(self.address) if self.protocol != "modbus" else 0
        base = int(self.address)
        return [str(base + i).zfill(width) for i in range(self.count)]


class BusModel(_Strict):
    """One ``[[buses]]`` row."""

    name: str
    area: str = ""
    listen: str = "tcp://127.0.0.1:0"
    baud: int = Field(2400, gt=0)
    parity: Literal["N", "E", "O"] = "E"
    bytesize: int = Field(8, ge=5, le=8)
    stopbits: int = Field(1, ge=1, le=2)
    pace: bool = True
    faults: FaultsModel = Field(default_factory=FaultsModel)
    seed: int = 0
    rfc2217: str = "127.0.0.1:0"  # HOST:PORT of the bus's RFC 2217 endpoint ("" = off)
    tap: str = ""  # HOST:PORT of a listen-only copy of all bus traffic ("" = off)

    @field_validator("rfc2217", "tap")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, _, port = value.rpartition(":")
        if value and (not host or not port.isdigit()):
            raise ValueError("must be 'HOST:PORT' (port 0 = any free port) or ''")
        return value

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        if value != "pty" and not value.startswith("tcp://"):
            raise ValueError("listen must be 'tcp://HOST:PORT' or 'pty'")
        if value.startswith("tcp://"):
            host, _, port = value[6:].rpartition(":")
            if not host or not port.isdigit():
                raise ValueError("listen must be 'tcp://HOST:PORT' (port 0 = any free port)")
        return value


class AreaModel(_Strict):
    """One ``[[areas]]`` row: a transformer area served by one gateway."""

    name: str
    gateway_id: str = ""
    technical_loss: float = Field(0.03, ge=0, lt=1)


class FleetConfig(_Strict):
    """The whole fleet file."""

    clock: Literal["real"] | AcceleratedSetting = "real"
    zone: str = "Asia/Shanghai"
    control: str = "127.0.0.1:0"
    seed: int = 0
    tou: dict[str, int] | None = None
    esam: EsamModel | None = None
    areas: list[AreaModel] = Field(default_factory=list)
    buses: list[BusModel] = Field(min_length=1)
    meters: list[MeterModel] = Field(default_factory=list)

    @model_validator(mode="after")
    def _cross(self) -> FleetConfig:
        if not self.areas:
            self.areas = [AreaModel(name="area1", gateway_id="gw-0001")]
        areas = {a.name for a in self.areas}
        if len(areas) != len(self.areas):
            raise ValueError("area names must be unique")
        buses: dict[str, BusModel] = {}
        for bus in self.buses:
            if bus.name in buses:
                raise ValueError(f"bus name {bus.name!r} is used twice")
            if not bus.area:
                bus.area = self.areas[0].name
            if bus.area not in areas:
                raise ValueError(f"bus {bus.name!r}: area {bus.area!r} is not declared")
            buses[bus.name] = bus
        listens = [
            b.listen for b in self.buses if not b.listen.endswith(":0") and b.listen != "pty"
        ]
        if len(listens) != len(set(listens)):
            raise ValueError("two buses listen on the same endpoint")
        seen: dict[tuple[str, str], bool] = {}
        totals: dict[str, int] = {}
        for meter in self.meters:
            if meter.bus not in buses:
                raise ValueError(f"meter {meter.address}: bus {meter.bus!r} is not declared")
            if meter.esam and self.esam is None:
                raise ValueError(f"meter {meter.address}: esam = true needs [esam] key_file")
            family = "modbus" if meter.protocol == "modbus" else "dlt645"
            for address in meter.addresses():
                key = (meter.bus, f"{family}:{address}")
                if key in seen:
                    raise ValueError(f"address {address} is used twice on bus {meter.bus!r}")
                seen[key] = True
            if meter.role == "area_total":
                area = buses[meter.bus].area
                totals[area] = totals.get(area, 0) + meter.count
                if totals[area] > 1:
                    raise ValueError(f"area {area!r} has more than one area total meter")
        return self


def _location(error: Any) -> str:
    return ".".join(str(p) for p in error.get("loc", ())) or "(top level)"


def parse_config(data: dict[str, Any], source: str = "fleet config") -> FleetConfig:
    """Validate a parsed fleet file; ``SimConfigError`` names the key and the reason."""
    try:
        return FleetConfig.model_validate(data)
    except ValidationError as exc:
        lines = [f"{source}: {_location(e)}: {e['msg']}" for e in exc.errors()[:8]]
        raise SimConfigError("\n".join(lines)) from None


def load_config(path: str | Path) -> FleetConfig:
    """Read and validate a fleet TOML file."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise SimConfigError(f"{path}: cannot read ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise SimConfigError(f"{path}: not valid TOML ({exc})") from None
    config = parse_config(data, str(path))
    if config.esam is not None and not config.esam.key_file.is_absolute():
        config.esam.key_file = path.parent / config.esam.key_file  # relative to the fleet file
    return config


def quick_config(
    meters: int = 10,
    protocol: str = "dlt645-2007",
    listen: str = "tcp://127.0.0.1:0",
    baud: int = 2400,
    *,
    first_address: str | None = None,
    pace: bool = True,
    clock: Any = "real",
    area_total: bool = False,
    personality: str = "ordinary",
) -> FleetConfig:
    """One area, one bus, ``meters`` meters (``protocol`` may be ``modbus:MODEL``).

    A personality that names its own protocol (``dlt645-1997``, a Modbus one) sets the bus's
    protocol, model and line settings too, so the quick bus is readable as printed.
    """
    try:
        found = load_personality(personality)
    except SimConfigError as exc:
        raise SimConfigError(f"command line: {exc}") from None
    if found.protocol and found.protocol != protocol.partition(":")[0]:
        protocol = found.protocol + (f":{found.model}" if found.model else "")
    model = ""
    if protocol.startswith("modbus"):
        protocol, _, model = protocol.partition(":")
        model = model or found.model
    address = first_address or ("1" if protocol == "modbus" else "202611240001")
    rows: list[dict[str, Any]] = [
        {
            "bus": "bus1",
            "protocol": protocol,
            "model": model,
            "address": address,
            "count": meters,
            "personality": personality,
        }
    ]
    if area_total and protocol != "modbus":
        rows.append(
            {"bus": "bus1", "protocol": protocol, "address": "202611249999", "role": "area_total"}
        )
    parity = "N" if protocol == "modbus" else "E"
    if found.line_settings is not None:  # the quick bus runs at the personality's settings
        baud, parity = found.line_settings.baud, found.line_settings.parity
    data = {
        "clock": clock,
        "buses": [{"name": "bus1", "listen": listen, "baud": baud, "parity": parity, "pace": pace}],
        "meters": rows,
    }
    return parse_config(data, "command line")
