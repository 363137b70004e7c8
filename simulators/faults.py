"""Wire faults, per meter or per bus, set in the fleet file or switched live.

A meter's effective faults are its own combined with its bus's (either one silent = silent,
probabilities and delays take the larger).  Clock drift and power-down are meter state (see
``simulators.meter``), switched through the same control surface.

==================  =======================================================================
``silent``          the meter (or the whole bus) never answers
``drop``            intermittent: each reply is lost with this probability
``corrupt``         each reply has one byte damaged with this probability
``late_ms``         extra reply delay (set it beyond the gateway's timeout)
``wrong_address``   replies carry another meter's address
``echo``            (bus) the adapter echoes the request back (local echo, half duplex)
``noise``           (bus) this many random bytes appear on the line before each reply
==================  =======================================================================
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from simulators.errors import ControlError


@dataclass(frozen=True)
class Faults:
    """A set of wire faults (all off by default)."""

    silent: bool = False
    drop: float = 0.0
    corrupt: float = 0.0
    late_ms: float = 0.0
    wrong_address: bool = False
    echo: bool = False
    noise: int = 0

    def __post_init__(self) -> None:
        for name in ("drop", "corrupt"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ControlError(f"fault {name} must be a probability in [0, 1], got {value}")
        if self.late_ms < 0 or self.noise < 0:
            raise ControlError("fault late_ms and noise must be ≥ 0")

    def combine(self, other: Faults) -> Faults:
        """The faults in force when both ``self`` (bus) and ``other`` (meter) apply."""
        return Faults(
            silent=self.silent or other.silent,
            drop=max(self.drop, other.drop),
            corrupt=max(self.corrupt, other.corrupt),
            late_ms=max(self.late_ms, other.late_ms),
            wrong_address=self.wrong_address or other.wrong_address,
            echo=self.echo or other.echo,
            noise=max(self.noise, other.noise),
        )

    def updated(self, changes: dict[str, Any]) -> Faults:
        """A copy with ``changes`` applied; unknown names are a ``ControlError``."""
        known = {f.name: f.type for f in fields(self)}
        unknown = sorted(set(changes) - set(known))
        if unknown:
            raise ControlError(f"unknown fault(s) {unknown}; known: {sorted(known)}")
        try:
            typed = {k: type(getattr(self, k))(v) for k, v in changes.items()}
        except (TypeError, ValueError) as exc:
            raise ControlError(f"bad fault value in {changes!r}: {exc}") from exc
        return replace(self, **typed)

    def as_dict(self) -> dict[str, Any]:
        """Plain values (for JSON)."""
        return asdict(self)

    @property
    def any(self) -> bool:
        """Whether any fault is on."""
        return self != Faults()


NO_FAULTS = Faults()
