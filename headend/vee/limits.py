"""A meter's plausible maximum power, from its rating, the point's contract capacity, or settings.

Chinese and IEC meter nameplates give the current as ``I_b(I_max) A`` — ``5(60)A`` is a basic
current of 5 A and a maximum of 60 A (IEC 62053-21/GB/T 17215.321; DL/T 614 for multifunction
meters) — and the voltage as ``220V`` (single phase) or ``3×220/380V`` (three phase, four wire).
The maximum power the register can see is ``I_max × U_phase × phases``; a CT/VT-connected meter's
register counts secondary energy, so that limit is in register units and the contract capacity
(primary side, kVA) is divided by the multiplier to compare.  ``[vee]`` settings hold the default
for meters whose model text names no rating::

    [vee]
    default_max_current = "60"   # A, when the model text names none
    voltage = "220"              # V per phase
    margin = "1.2"               # allowed above the nameplate maximum
    register_digits = 6          # integer digits of the energy register (roll-over at 10^6)
    spike_factor = "10"          # × the meter's typical rate
    spike_floor = "5"            # kWh: smaller intervals are never a spike
    spike_history = 24           # kept intervals needed before the spike rule applies
    estimate_after_hours = 48    # an open gap this long is estimated (headend.vee.estimate)
    estimate_history_days = 28   # the meter's own history the estimate's rate comes from
    estimate_min_history_hours = 72   # less history: no estimate
    estimate_max_days = 31       # no estimate further than this past the last reading
    estimate_charging = "postpaid"    # none | postpaid | all: who is charged for estimates
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from headend.db.errors import ConfigError
from headend.vee.rules import Limits

RATING = re.compile(r"(\d+(?:\.\d+)?)\s*\(\s*(\d+(?:\.\d+)?)\s*\)\s*A", re.IGNORECASE)
THREE_PHASE = re.compile(r"3\s*[×xX*]\s*(\d+(?:\.\d+)?)\s*(?:/\s*\d+(?:\.\d+)?)?\s*V")


class VeeSettings(BaseModel):
    """``[vee]`` of the head-end's TOML."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    default_max_current: Decimal = Field(default=Decimal(60), gt=0, le=10000)
    voltage: Decimal = Field(default=Decimal(220), gt=0, le=100000)
    margin: Decimal = Field(default=Decimal("1.2"), ge=1, le=10)
    register_digits: int = Field(default=6, ge=4, le=10)
    spike_factor: Decimal = Field(default=Decimal(10), gt=1, le=1000)
    spike_floor: Decimal = Field(default=Decimal(5), ge=0)
    spike_history: int = Field(default=24, ge=2, le=2000)
    estimate_after_hours: float = Field(default=48, ge=1, le=24 * 90)
    estimate_history_days: int = Field(default=28, ge=1, le=400)
    estimate_min_history_hours: float = Field(default=72, ge=1, le=24 * 400)
    estimate_max_days: int = Field(default=31, ge=1, le=400)
    estimate_charging: Literal["none", "postpaid", "all"] = "postpaid"


def vee_settings(extra: dict[str, Any], source: object = None) -> VeeSettings:
    """Parse ``[vee]``; ``ConfigError`` naming the file and the key."""
    try:
        return VeeSettings.model_validate(extra.get("vee", {}))
    except ValidationError as exc:
        where = f"{source}: " if source else ""
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{where}vee.{key}: {first['msg']}") from None


def rated_kw(model: str | None, settings: VeeSettings) -> Decimal:
    """The register-side maximum power of a meter of ``model`` (kW)."""
    text = model or ""
    rating = RATING.search(text)
    current = Decimal(rating.group(2)) if rating else settings.default_max_current
    three = THREE_PHASE.search(text)
    voltage = Decimal(three.group(1)) if three else settings.voltage
    phases = 3 if three else 1
    return current * voltage * phases / 1000


def limits(
    model: str | None,
    multiplier: Decimal,
    settings: VeeSettings,
    *,
    contract_kva: Decimal | None = None,
    max_kw: Decimal | None = None,
) -> Limits:
    """The rules' limits for one meter: the smallest of its rating and the point's capacities."""
    candidates = [rated_kw(model, settings)]
    for primary in (contract_kva, max_kw):
        if primary is not None and multiplier > 0:
            candidates.append(primary / multiplier)
    return Limits(
        max_kw=min(candidates),
        digits=settings.register_digits,
        margin=settings.margin,
        spike_factor=settings.spike_factor,
        spike_floor=settings.spike_floor,
        spike_history=settings.spike_history,
    )
