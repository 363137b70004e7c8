"""The gateway's configuration file (``gateway.toml``), loaded into pydantic models.

The format is agreed with the simulators (which write it) in ``docs/gateway.md``.  Validation
runs in two stages: field checks (pydantic) and cross-field checks (unique addresses per bus, one
bus per port, meters on declared buses, timeouts that fit the poll interval:
``gateway.config_checks``); secrets and key files are read by ``gateway.config_secrets``.  Every
failure raises ``ConfigError`` whose message names the file, the key and the fix, one line per
problem; the daemon prints it and exits with status 2.

The ``[[meters]]`` rows have the fields of ``protocols.uplink.ArchiveMeter``, so an archive pushed
by the head-end has the same shape (see ``validate_archive``).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Sequence
from datetime import time
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from gateway.config_checks import cross_checks
from gateway.errors import GatewayError
from gateway.signature import SignatureConfig
from protocols.model import DEFAULT_METER_ZONE
from protocols.uplink.messages import ArchiveMeter
from protocols.uplink.topics import GATEWAY_ID
from taiqu.clock import ClockSetting

PASSWORD_ENV = "TAIQU_BROKER_PASSWORD"
STANDARD_BAUDS = (300, 600, 1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)
MAX_BACKFILL_DAYS = 62
DLT645_ADDRESS = re.compile(r"^[0-9]{12}$")


class ConfigError(GatewayError):
    """The configuration cannot be used; ``str()`` is the message for the operator."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BrokerConfig(_Model):
    """``[broker]``: where the MQTT uplink connects, and how it authenticates."""

    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    keepalive: int = Field(default=60, ge=5, le=3600)  # each ping costs ~80 B of TCP/IP on 4G
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    username: str | None = None  # defaults to the gateway id
    password_file: Path | None = None

    @model_validator(mode="after")
    def _client_pair(self) -> BrokerConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together: set both or neither")
        return self

    @property
    def tls(self) -> bool:
        return self.ca_file is not None or self.cert_file is not None


class ScheduleConfig(_Model):
    """``[schedule]``: poll intervals (minutes, aligned to the hour) and daily frozen reads."""

    energy_minutes: int = Field(default=15, ge=1, le=1440)
    events_minutes: int = Field(default=5, ge=0, le=1440)  # 0 = off
    instant_minutes: int = Field(default=0, ge=0, le=1440)  # 0 = off
    daily_frozen_at: time = time(0, 5)
    backfill_days: int = Field(default=7, ge=0, le=MAX_BACKFILL_DAYS)

    @field_validator("daily_frozen_at", mode="before")
    @classmethod
    def _hhmm(cls, value: Any) -> Any:
        if isinstance(value, str):
            match = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", value.strip())
            if not match:
                raise ValueError(f'{value!r} is not a time of day: write it as "HH:MM"')
            return time(int(match[1]), int(match[2]))
        return value

    @field_validator("energy_minutes", "events_minutes", "instant_minutes")
    @classmethod
    def _divides_the_day(cls, value: int) -> int:
        if value and 1440 % value:
            raise ValueError(
                f"{value} does not divide a day into equal slots: use one of 1, 5, 10, 15, 30, 60"
            )
        return value


class ClockTrustConfig(_Model):
    """``[clock_trust]``: when the gateway may trust its own clock (``gateway.clocktrust``)."""

    # system: NTP state (timedatectl, adjtimex); headend: that, or a head-end time that agrees;
    # trusted / untrusted: fixed (accelerated clocks, tests).  Unset: trusted for an
    # accelerated clock (it is not the system clock), system otherwise.
    source: Literal["system", "headend", "trusted", "untrusted"] | None = None
    headend_tolerance_s: float = Field(default=30.0, gt=0, le=3600)


class TimeSyncConfig(_Model):
    """``[time_sync]``: scheduled broadcast time sync of the meters (``gateway.timesync``)."""

    enabled: bool = True
    min_drift_s: float = Field(default=5.0, ge=0, le=3600)  # smaller drift is left alone
    max_drift_s: float = Field(default=300.0, gt=0, le=86400)  # larger: a site visit, no sync
    drift_event_s: float = Field(default=60.0, gt=0, le=86400)  # a clock_drift event (sync)

    @model_validator(mode="after")
    def _limits(self) -> TimeSyncConfig:
        if self.min_drift_s >= self.max_drift_s:
            raise ValueError("min_drift_s must be smaller than max_drift_s")
        if self.drift_event_s > self.max_drift_s:
            raise ValueError("drift_event_s must not exceed max_drift_s")
        return self


class CommandsConfig(_Model):
    """``[commands]``: how head-end commands are carried out."""

    reconnect_window_s: float = Field(default=300.0, ge=0, le=3600)  # spread of mass reconnects
    # meter passwords and operator codes (TOML, mode 0600; gateway.commands.secrets); unset: the
    # DL/T 645 factory values
    meter_secrets_file: Path | None = None


class HealthConfig(_Model):
    """``[health]``: the status message and the loopback ``/metrics`` endpoint."""

    metrics_port: int = Field(default=0, ge=0, le=65535)  # 0 = not served
    status_seconds: float = Field(default=3600.0, ge=10, le=86400)  # wall clock; births on change


class BusConfig(_Model):
    """``[[buses]]``: one RS-485 port (a device, a pty or ``socket://host:port``)."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    port: str = Field(min_length=1)
    baud: int = 2400
    parity: Literal["N", "E", "O"] = "E"
    bytesize: Literal[7, 8] = 8
    stopbits: Literal[1, 2] = 1
    response_timeout_ms: int = Field(default=0, ge=0, le=10_000)  # 0 = derived
    retries: int = Field(default=1, ge=0, le=5)
    gap_ms: float = Field(default=0.0, ge=0, le=1000)  # 0 = 3.5 character times
    rs485: bool = False  # let the kernel drive RTS for the transceiver (real ports only)
    echo: bool = False  # the adapter reads back what it sends (half-duplex without echo cancel)

    @field_validator("baud")
    @classmethod
    def _standard_baud(cls, value: int) -> int:
        if value not in STANDARD_BAUDS:
            raise ValueError(f"{value} is not a standard baud rate: use one of {STANDARD_BAUDS}")
        return value

    @property
    def bits_per_char(self) -> int:
        """Start bit + data bits + parity bit + stop bits (11 for 8E1)."""
        return 1 + self.bytesize + (0 if self.parity == "N" else 1) + self.stopbits


class MeterConfig(_Model):
    """``[[meters]]``: one meter of the archive (same fields as ``ArchiveMeter``)."""

    id: str = Field(default="", max_length=32)
    bus: str
    protocol: Literal["dlt645-2007", "dlt645-1997", "modbus"]
    address: str = Field(min_length=1, max_length=32)
    model: str = ""
    role: Literal["customer", "area_total"] = "customer"

    @model_validator(mode="after")
    def _address_and_id(self) -> MeterConfig:
        if self.protocol == "modbus":
            if not self.address.isdigit() or not 1 <= int(self.address) <= 247:
                raise ValueError(
                    f"address {self.address!r}: a Modbus unit id is a number from 1 to 247"
                )
            if not self.model:
                raise ValueError('a Modbus meter needs model = its register map (e.g. "SDM630")')
            if not self.id:
                raise ValueError('a Modbus meter needs an id (e.g. id = "bus1:7")')
        elif not DLT645_ADDRESS.match(self.address):
            raise ValueError(
                f"address {self.address!r}: a DL/T 645 address is 12 digits as on the nameplate"
            )
        if not self.id:
            object.__setattr__(self, "id", self.address)
        if not re.fullmatch(r"[A-Za-z0-9:_.-]{1,32}", self.id):
            raise ValueError(f"id {self.id!r}: use 1-32 letters, digits, ':', '_', '.' or '-'")
        return self

    @property
    def is_modbus(self) -> bool:
        return self.protocol == "modbus"

    def to_archive(self) -> ArchiveMeter:
        """The archive (MQTT contract) form of this meter."""
        return ArchiveMeter(
            id=self.id,
            bus=self.bus,
            protocol=self.protocol,
            address=self.address,
            model=self.model or None,
            role=self.role,
        )

    @classmethod
    def from_archive(cls, meter: ArchiveMeter) -> MeterConfig:
        """A meter pushed by the head-end."""
        return cls(
            id=meter.id,
            bus=meter.bus,
            protocol=meter.protocol,
            address=meter.address,
            model=meter.model or "",
            role=meter.role,
        )


class GatewayConfig(_Model):
    """The whole ``gateway.toml``."""

    gateway_id: str
    clock: ClockSetting = "real"
    zone: str = DEFAULT_METER_ZONE
    data_dir: Path = Path("/var/lib/taiqu-gateway")
    store_budget_mb: int = Field(default=256, ge=1, le=1_000_000)
    broker: BrokerConfig = BrokerConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    clock_trust: ClockTrustConfig = ClockTrustConfig()
    time_sync: TimeSyncConfig = TimeSyncConfig()
    commands: CommandsConfig = CommandsConfig()
    health: HealthConfig = HealthConfig()
    signatures: SignatureConfig = SignatureConfig()
    buses: tuple[BusConfig, ...] = Field(min_length=1)
    meters: tuple[MeterConfig, ...] = ()

    @field_validator("gateway_id")
    @classmethod
    def _gateway_id(cls, value: str) -> str:
        if not GATEWAY_ID.match(value):
            raise ValueError(f"{value!r}: use 1-64 letters, digits, '_' or '-' (it is an MQTT id)")
        return value

    @field_validator("zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone (e.g. Asia/Shanghai)") from None
        return value

    @property
    def clock_trust_source(self) -> str:
        """The clock trust source in effect (see ``ClockTrustConfig``)."""
        if self.clock_trust.source is not None:
            return self.clock_trust.source
        return "system" if self.clock == "real" else "trusted"

    @property
    def signatures_required(self) -> bool:
        """Whether commands must be signed: ``[signatures] required``; unset, yes with a trust file
        or a real clock (every deployment), no with an accelerated clock (a simulation)."""
        s = self.signatures
        if s.required is not None:
            return s.required
        return s.trust_file is not None or self.clock == "real"

    def bus(self, name: str) -> BusConfig:
        """The bus called ``name``."""
        for bus in self.buses:
            if bus.name == name:
                return bus
        raise KeyError(name)


def _loc(loc: Iterable[Any], doc: dict[str, Any]) -> str:
    """``meters[3].address`` from a pydantic error location."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in {"function-after", "function-before"} or str(part).startswith("function"):
            continue
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _format_validation(path: Path, exc: ValidationError, doc: dict[str, Any]) -> list[str]:
    problems = []
    errors = exc.errors()
    deeper = {tuple(e["loc"][:1]) for e in errors if len(e["loc"]) > 1}
    for err in errors:
        if err["type"] == "too_short" and tuple(err["loc"]) in deeper:
            continue  # "buses: at least 1 item" only because an item was invalid
        loc = [p for p in err["loc"] if not str(p).startswith(("function-", "literal["))]
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "missing":
            msg = "is required: add it"
        elif err["type"] == "extra_forbidden":
            msg = "is not a known key: remove it or check its spelling (see examples/gateway.toml)"
        problems.append(f"{path}: {_loc(loc, doc)}: {msg}")
    return problems


def parse_config(doc: dict[str, Any], path: Path) -> GatewayConfig:
    """Validate a parsed TOML document; ``ConfigError`` lists every problem."""
    try:
        cfg = GatewayConfig.model_validate(doc)
    except ValidationError as exc:
        raise ConfigError(_format_validation(path, exc, doc)) from None
    problems = cross_checks(path, cfg)
    if problems:
        raise ConfigError(problems)
    return cfg


def load_config(path: str | Path) -> GatewayConfig:
    """Read and validate ``gateway.toml``."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read the file ({exc.strerror or exc})"]) from None
    try:
        doc = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError([f"{path}: is not UTF-8 text"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: not valid TOML: {exc}"]) from None
    return parse_config(doc, path)


def config_hash(path: str | Path) -> str:
    """A short hash of the file as read (reported in the status message)."""
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
