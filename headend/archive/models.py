"""Input and output shapes of the archive (validated at the API and by the CSV import)."""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from protocols.quantities import is_known

Id = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
MeterId = Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9:_.-]+$")]
Protocol = Literal["dlt645-2007", "dlt645-1997", "dlt698", "modbus"]
# generation: a PV generation meter behind a customer's own meter (neither supply nor sales)
Role = Literal["customer", "area_total", "generation"]
DLT645_ADDRESS = re.compile(r"^[0-9]{12}$")


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GatewayIn(_In):
    """A gateway (concentrator) of the archive."""

    id: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
    name: str = Field(default="", max_length=200)
    location: str = Field(default="", max_length=200)


class GatewayPatch(_In):
    name: str | None = Field(default=None, max_length=200)
    location: str | None = Field(default=None, max_length=200)


class AreaIn(_In):
    """A transformer area (台区) and the gateway that serves it."""

    id: Id
    name: str = Field(default="", max_length=200)
    gateway: str | None = Field(default=None, max_length=64)
    transformer: str = Field(default="", max_length=200)


class AreaPatch(_In):
    name: str | None = Field(default=None, max_length=200)
    gateway: str | None = Field(default=None, max_length=64)
    transformer: str | None = Field(default=None, max_length=200)


def _multiplier(value: Decimal | None) -> Decimal | None:
    if value is not None and (not value.is_finite() or value <= 0):
        raise ValueError("multiplier must be a positive number (CT ratio × PT ratio)")
    return value


class MeterPatch(_In):
    """Fields of a meter that may change in a new version (``None``: unchanged)."""

    point: Id | None = None
    area: Id | None = None
    bus: str | None = Field(default=None, min_length=1, max_length=64)
    protocol: Protocol | None = None
    address: str | None = Field(default=None, min_length=1, max_length=32)
    model: str | None = Field(default=None, max_length=100)
    multiplier: Decimal | None = None
    role: Role | None = None
    customer: str | None = Field(default=None, max_length=200)
    tariff_category: str | None = Field(default=None, max_length=40)
    keep_power: bool | None = None
    pv: bool | None = None
    esam: bool | None = None

    _mult = field_validator("multiplier")(_multiplier)


class MeterIn(_In):
    """A meter at a metering point (``point`` defaults to the meter id)."""

    id: MeterId
    point: Id | None = None
    area: Id
    bus: str = Field(min_length=1, max_length=64)
    protocol: Protocol = "dlt645-2007"
    address: str = Field(min_length=1, max_length=32)
    model: str | None = Field(default=None, max_length=100)
    multiplier: Decimal = Decimal(1)
    role: Role = "customer"
    customer: str = Field(default="", max_length=200)
    tariff_category: str = Field(default="", max_length=40)
    keep_power: bool = False
    pv: bool = False  # rooftop PV behind the meter: its export register is read and counted
    esam: bool = False  # a cost-control meter with an ESAM: control and clock via the secured flow

    _mult = field_validator("multiplier")(_multiplier)

    @model_validator(mode="after")
    def _address_fits_protocol(self) -> MeterIn:
        check_address(self.protocol, self.address)
        if self.esam and self.protocol != "dlt645-2007":
            raise ValueError("only DL/T 645-2007 meters have an ESAM")
        return self


def check_address(protocol: str, address: str) -> None:
    """DL/T 645 and 698.45 addresses are 12 digits; Modbus unit ids 1-247."""
    if protocol.startswith(("dlt645", "dlt698")) and not DLT645_ADDRESS.match(address):
        raise ValueError(f"a {protocol} address is 12 digits, got {address!r}")
    if protocol == "modbus" and not (address.isdigit() and 1 <= int(address) <= 247):
        raise ValueError(f"a Modbus unit id is 1-247, got {address!r}")


Registers = dict[str, Decimal]


def _registers(values: Registers) -> Registers:
    for name, value in values.items():
        if not is_known(name):
            raise ValueError(f"unknown quantity {name!r}")
        if not value.is_finite() or value < 0:
            raise ValueError(f"{name}: a register reading is a non-negative number")
    if not values:
        raise ValueError("give at least one register reading")
    return values


class ReplacementIn(_In):
    """Replace the meter at a point: the old one's final and the new one's start readings."""

    new: MeterIn
    at: AwareDatetime
    old_final: Registers
    new_start: Registers
    reason: str = Field(default="", max_length=500)

    _regs = field_validator("old_final", "new_start")(_registers)


class Effective(_In):
    """When a change takes effect (default: now)."""

    at: datetime | None = None
