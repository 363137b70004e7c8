"""The whole fleet file (areas, buses, ``[esam]``, cross-checks), loading it, and the quick fleet
of ``taiqu sim serve`` without a file.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from simulators.config.meters import FaultsModel, MeterModel, _Strict
from simulators.errors import SimConfigError
from simulators.personalities import load_personality
from taiqu.clock import AcceleratedSetting


class EsamModel(_Strict):
    """``[esam]``: the software ESAM of meters with ``esam = true`` (``simulators.esam``)."""

    key_file: Path  # 32 hex digits, mode 0600: the head-end's laboratory master key
    window_s: float = Field(300.0, gt=0)
    max_failures: int = Field(15, ge=1)


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
