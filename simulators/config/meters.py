"""The fleet file's ``[[meters]]`` rows: protocol, personality, addresses, faults, scenarios.

Scenario kinds: ``meter_cover_open`` / ``terminal_cover_open`` (``until`` or ``duration_s``),
``reverse``, ``stopped``, ``bypass`` (``fraction`` registered), ``neutral_bypass`` (``fraction``
registered, the neutral current stays the whole load's), ``power_down`` (``until``),
``replace`` (``new_address``, ``start_reading``).  Times are ``at`` (with a UTC offset) or
``after_s`` seconds after the fleet starts.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from simulators.errors import SimConfigError
from simulators.line import LineSettings
from simulators.personalities import Personality, load_personality

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
