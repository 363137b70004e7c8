"""Meter personalities as data: one TOML file per kind of real meter in this folder.

A personality says how a meter's firmware departs from the kind, complete meter: which
identifiers it lacks and what it does about them (abnormal reply, silence, FF/EE filler), whether
it answers block identifiers, how many phases its blocks carry, how long a reply frame may be
before the rest goes into follow-up frames, its line settings, relay timing, clock rules and
its busy second after midnight.  ``docs/simulators.md`` lists every key and every personality.

A fleet row names one (``personality = "single-phase"``) and may override keys
(``personality_overrides = { trip_delay_s = 5 }``); ``taiqu sim serve --personality NAME``
gives one to every meter of a quick bus.  Unknown names and keys are a ``SimConfigError``.
"""

from __future__ import annotations

import fnmatch
import tomllib
from functools import cache
from importlib import resources
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from simulators.errors import SimConfigError
from simulators.line import LineSettings

Protocol = Literal["dlt645-2007", "dlt645-1997", "modbus"]


class Personality(BaseModel):
    """How one kind of meter behaves on the wire (every default is the kind, ordinary meter)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "ordinary"
    description: str = ""
    protocol: Protocol | None = None  # the protocol it speaks when the fleet row does not say
    model: str = ""  # Modbus model when the fleet row does not say
    line: str | None = None  # "1200 8E1": its own serial settings (None: the bus's)
    response_delay_ms: float | None = Field(None, ge=0, le=5000)
    # -- DL/T 645 identifiers
    blocks: bool = True  # answers block identifiers (…FF..); False: abnormal reply
    block_phases: int = Field(3, ge=1, le=3)  # phase members a phase block carries (1: A only)
    unsupported: tuple[str, ...] = ()  # identifier globs it lacks ("0280*", "0203FF00")
    missing: tuple[str, ...] = ()  # value-key globs it lacks ("energy.*.t4", "current.n")
    on_unsupported: Literal["error", "silent"] = "error"
    block_filler: Literal["", "FF", "EE"] = ""  # lacking block members filled, block answered
    max_frame_data: int = Field(200, ge=16, le=200)  # value bytes per frame; rest: follow-up
    settlement: bool = True  # previous settlement periods (DI0 01–0C; 1997 94xx/98xx)
    event_counters: bool = True
    load_profile: bool = True
    load_profile_interval_min: int = Field(15, ge=1, le=60)
    # -- relay
    trip_delay_s: float = Field(0.0, ge=0, le=3600)
    trip_defer_above_a: float | None = Field(None, gt=0)  # high current: trip deferred
    trip_defer_step_s: float = Field(60.0, gt=0)
    trip_defer_max_s: float = Field(1800.0, ge=0)
    # -- clock
    strict_clock: bool = False  # broadcast sync rules of the State Grid meter specifications
    sync_window_s: float = Field(300.0, gt=0)  # accepted only within ± this of the meter clock
    sync_midnight_guard_s: float = Field(300.0, ge=0)  # refused within this of 00:00
    sync_per_day: int = Field(1, ge=1)
    drift_min_per_day: float = 0.0
    busy_after_midnight_s: float = Field(0.0, ge=0, le=600)  # silent while it freezes
    # -- Modbus
    exception_on_gap: bool = False  # exception 02 when a read touches an unmapped register
    word_order: Literal["map", "big", "little"] = "map"  # 32-bit word order it really sends

    @field_validator("line")
    @classmethod
    def _line(cls, value: str | None) -> str | None:
        if value is not None:
            LineSettings.parse(value)
        return value

    @property
    def line_settings(self) -> LineSettings | None:
        """Its own serial settings, or None for the bus's."""
        return LineSettings.parse(self.line) if self.line else None

    def lacks_di(self, di_hex: str) -> bool:
        """Whether the identifier (hex as in the standard) is one it does not support."""
        return any(fnmatch.fnmatchcase(di_hex, p.upper()) for p in self.unsupported)

    def lacks_key(self, key: str) -> bool:
        """Whether a value key (block member or single value) is one it does not hold."""
        return any(fnmatch.fnmatchcase(key, p) for p in self.missing)

    def with_overrides(self, overrides: dict[str, Any]) -> Personality:
        """A copy with keys changed (validated)."""
        if not overrides:
            return self
        try:
            return Personality.model_validate({**self.model_dump(), **overrides})
        except ValidationError as exc:
            raise SimConfigError(f"personality {self.name!r} overrides: {_first(exc)}") from None


ORDINARY = Personality()


def _first(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(p) for p in error.get("loc", ()))
    return f"{where}: {error['msg']}"


def _files() -> dict[str, Any]:
    folder = resources.files(__name__)
    return {
        item.name.removesuffix(".toml"): item
        for item in folder.iterdir()
        if item.name.endswith(".toml")
    }


def names() -> list[str]:
    """Every shipped personality."""
    return sorted(_files())


@cache
def load_personality(name: str) -> Personality:
    """The personality ``name`` (``SimConfigError`` naming the known ones if unknown)."""
    files = _files()
    if name not in files:
        raise SimConfigError(f"unknown personality {name!r}; known: {', '.join(sorted(files))}")
    try:
        data = tomllib.loads(files[name].read_text())
        return Personality.model_validate({"name": name, **data})
    except (tomllib.TOMLDecodeError, ValidationError) as exc:
        detail = _first(exc) if isinstance(exc, ValidationError) else str(exc)
        raise SimConfigError(f"personality {name}.toml: {detail}") from None


def describe() -> list[dict[str, Any]]:
    """Name, protocol, line and description of every personality (for the CLI and control)."""
    out = []
    for name in names():
        p = load_personality(name)
        out.append(
            {"name": name, "protocol": p.protocol, "line": p.line, "description": p.description}
        )
    return out


__all__ = ["ORDINARY", "Personality", "describe", "load_personality", "names"]
