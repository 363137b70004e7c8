"""The gateway's configuration file (``gateway.toml``) as pydantic models (field checks).

The format is agreed with the simulators (which write it) in ``docs/gateway.md``.  Cross-field
checks live in ``gateway.config.checks``, loading in ``gateway.config.load``, secrets and key
files in ``gateway.config.secrets``.  ``[broker]`` is the uplink's own ``BrokerSettings``.

The ``[[meters]]`` rows have the fields of ``protocols.uplink.ArchiveMeter``, so an archive pushed
by the head-end has the same shape (``MeterConfig.from_archive``).
"""

from __future__ import annotations

import re
from datetime import time
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gateway.bus.link import Line, LinkSettings
from gateway.bus.timing import LineTiming
from gateway.signature import SignatureConfig
from gateway.uplink.settings import BrokerSettings
from protocols.model import DEFAULT_METER_ZONE
from protocols.uplink.messages import ArchiveMeter
from protocols.uplink.topics import GATEWAY_ID
from taiqu.clock import ClockSetting

STANDARD_BAUDS = (300, 600, 1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)
MAX_BACKFILL_DAYS = 62
DLT645_ADDRESS = re.compile(r"^[0-9]{12}$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ScheduleConfig(_Model):
    """``[schedule]``: poll intervals (minutes, aligned to the hour) and daily frozen reads."""

    energy_minutes: int = Field(default=15, ge=1, le=1440)
    events_minutes: int = Field(default=5, ge=0, le=1440)  # 0 = off
    instant_minutes: int = Field(default=0, ge=0, le=1440)  # 0 = off
    # reverse (export) energy of every meter, for areas with rooftop PV (area total meters read
    # theirs with the energy sweep anyway); 0 = off
    export_minutes: int = Field(default=0, ge=0, le=1440)
    frozen_export: bool = False  # the daily frozen run reads the reverse energy freeze too
    daily_frozen_at: time = time(0, 5)
    backfill_days: int = Field(default=7, ge=0, le=MAX_BACKFILL_DAYS)
    # load profile records (DL/T 645-2007 DI3 = 06; gateway.polling.history): every this many
    # minutes the records stored since the last read, of these categories (1 V/I/f, 2 power,
    # 3 power factor, 4 energy totals, 5 reactive quadrants, 6 demand); 0 = off
    load_profile_minutes: int = Field(default=0, ge=0, le=1440)
    load_profile_categories: tuple[int, ...] = (4,)
    load_profile_interval_min: int = Field(default=15, ge=1, le=60)  # the meters' record step
    load_profile_backfill_hours: int = Field(default=24, ge=1, le=240)
    # previous settlement periods (月结算), read once a day at settlement_at; 0 = off
    settlement_periods: int = Field(default=0, ge=0, le=12)
    settlement_at: time = time(1, 0)
    settlement_day: int = Field(default=1, ge=1, le=28)  # the meters' settlement day (04000B01)
    settlement_hour: int = Field(default=0, ge=0, le=23)

    @field_validator("load_profile_categories")
    @classmethod
    def _categories(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        wrong = [c for c in value if not 1 <= c <= 6]
        if wrong or not value or len(set(value)) != len(value):
            raise ValueError(f"{list(value)}: list load profile categories 1–6, each once")
        return value

    @field_validator("daily_frozen_at", "settlement_at", mode="before")
    @classmethod
    def _hhmm(cls, value: Any) -> Any:
        if isinstance(value, str):
            match = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", value.strip())
            if not match:
                raise ValueError(f'{value!r} is not a time of day: write it as "HH:MM"')
            return time(int(match[1]), int(match[2]))
        return value

    @field_validator(
        "energy_minutes", "events_minutes", "instant_minutes", "export_minutes",
        "load_profile_minutes",
    )  # fmt: skip
    @classmethod
    def _divides_the_day(cls, value: int) -> int:
        if value and 1440 % value:
            raise ValueError(
                f"{value} does not divide a day into equal slots: use one of 1, 5, 10, 15, 30, 60"
            )
        return value


class ClockTrustConfig(_Model):
    """``[clock_trust]``: when the gateway may trust its own clock (``gateway.clock.trust``)."""

    # system: NTP state (timedatectl, adjtimex); headend: that, or a head-end time that agrees;
    # trusted / untrusted: fixed (accelerated clocks, tests).  Unset: trusted for an
    # accelerated clock (it is not the system clock), system otherwise.
    source: Literal["system", "headend", "trusted", "untrusted"] | None = None
    headend_tolerance_s: float = Field(default=30.0, gt=0, le=3600)


class TimeSyncConfig(_Model):
    """``[time_sync]``: scheduled broadcast time sync of the meters (``gateway.clock.sync``)."""

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
    # relay read-back: status word 3 is read until the relay matches (meters with a trip delay
    # or high-current deferral switch after acknowledging) or this deadline passes
    readback_deadline_s: float = Field(default=120.0, ge=0, le=3600)
    readback_interval_s: float = Field(default=5.0, gt=0, le=600)
    # meter passwords and operator codes (TOML, mode 0600; gateway.commands.secrets); unset: the
    # DL/T 645 factory values
    meter_secrets_file: Path | None = None


class SearchConfig(_Model):
    """``[search]``: the nightly search for meters the archive does not know (opt-in)."""

    enabled: bool = False
    at: time = time(3, 30)  # local time of ``zone``: off-peak
    max_seconds: float = Field(default=600.0, gt=0, le=7200)  # bus time per bus and run
    step: Literal["digit", "byte"] = "digit"

    @field_validator("at", mode="before")
    @classmethod
    def _hhmm(cls, value: Any) -> Any:
        return ScheduleConfig._hhmm(value)


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

    @property
    def line(self) -> LinkSettings:
        """The plain line settings the bus layer opens the port with."""
        return LinkSettings(
            self.port, self.baud, self.parity, self.bytesize, self.stopbits, self.rs485
        )

    @property
    def timing(self) -> LineTiming:
        """The bus layer's timing of these line settings."""
        return LineTiming.of(self.baud, self.bits_per_char, self.response_timeout_ms, self.gap_ms)


class MeterConfig(_Model):
    """``[[meters]]``: one meter of the archive (same fields as ``ArchiveMeter``)."""

    id: str = Field(default="", max_length=32)
    bus: str
    protocol: Literal["dlt645-2007", "dlt645-1997", "dlt698", "modbus"]
    address: str = Field(min_length=1, max_length=32)
    model: str = ""
    role: Literal["customer", "area_total"] = "customer"
    line: str | None = None  # own line settings, e.g. "1200 8E1" (default: the bus's)

    @field_validator("line")
    @classmethod
    def _line(cls, value: str | None) -> str | None:
        return None if value is None else str(Line.parse(value))

    @property
    def line_settings(self) -> Line | None:
        """The meter's own line settings, or None for the bus's."""
        return None if self.line is None else Line.parse(self.line)

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
                f"address {self.address!r}: a DL/T 645 / 698.45 address is 12 digits as on the "
                "nameplate"
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
            line=self.line,
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
            line=meter.line,
        )


class GatewayConfig(_Model):
    """The whole ``gateway.toml``."""

    gateway_id: str
    clock: ClockSetting = "real"
    zone: str = DEFAULT_METER_ZONE
    data_dir: Path = Path("/var/lib/taiqu-gateway")
    store_budget_mb: int = Field(default=256, ge=1, le=1_000_000)
    # group commits: a bus's readings, events and state commit at the end of its sweep or once
    # this old, whichever comes first (gateway.store.group; at most this much lost on power cut)
    store_group_seconds: float = Field(default=10.0, gt=0, le=600)
    broker: BrokerSettings = BrokerSettings()
    schedule: ScheduleConfig = ScheduleConfig()
    clock_trust: ClockTrustConfig = ClockTrustConfig()
    time_sync: TimeSyncConfig = TimeSyncConfig()
    commands: CommandsConfig = CommandsConfig()
    health: HealthConfig = HealthConfig()
    search: SearchConfig = SearchConfig()
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
