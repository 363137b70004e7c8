"""What one meter can be read for: identifiers it refuses, ignores, or answers undecodably.

Real meters differ from the table: a single-phase meter answers the voltage block with phase A
only, an older 2007 meter refuses the energy block but answers its members, some stay silent on
what they lack, some fill unsupported members with FF/EE.  None of that means the meter is dead.
Per meter the gateway keeps (persisted in the store, state key ``caps:<meter>``)::

    item key ──► reason (refused | unsupported | undecodable), quantities, since, detail

A known unreadable item is not asked again until ``REPROBE`` has passed (firmware changes,
meters replaced under the same address); the poller reads its members instead where it has them
(block → single identifiers).  The first time an item becomes unreadable it is logged at warning
with the raw reply, then at debug; a ``quantity_unavailable`` event tells the head-end which
quantities will not be collected, and ``quantity_available`` when it answers again.  Silence
counts only when it happens twice (a meter busy freezing at midnight is silent once); a refusal
or an undecodable reply is an answer and counts at once.  An item whose members are read instead
loses no quantity, so it names none.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from protocols.model import Event, EventType

log = logging.getLogger("gateway.meters")

REPROBE = timedelta(hours=24)
REASONS = ("refused", "unsupported", "undecodable")


@dataclass
class Unreadable:
    """Why one item of a meter is not read."""

    reason: str
    since: datetime
    quantities: tuple[str, ...] = ()
    detail: str = ""
    checked: datetime | None = None  # last time it was asked
    confirmed: bool = True  # silence counts only the second time (a meter busy at midnight)


@dataclass
class Capabilities:
    """The unreadable items of one meter, with counters (see the module docstring)."""

    meter: str
    items: dict[str, Unreadable] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REASONS, 0))
    dirty: bool = False

    def skip(self, key: str, now: datetime) -> bool:
        """Whether ``key`` is known unreadable and not yet due for another try."""
        known = self.items.get(key)
        if known is None or not known.confirmed:
            return False
        return now - (known.checked or known.since) < REPROBE

    def reason(self, key: str) -> str | None:
        known = self.items.get(key)
        return known.reason if known else None

    def mark(
        self,
        key: str,
        reason: str,
        quantities: tuple[str, ...],
        now: datetime,
        detail: str = "",
    ) -> Event | None:
        """Record that ``key`` could not be read; the event only when it newly is."""
        self.counts[reason] = self.counts.get(reason, 0) + 1
        known = self.items.get(key)
        self.dirty = True
        if known is not None and known.reason == reason and known.confirmed:
            known.checked = now
            log.debug("meter %s: %s still %s (%s)", self.meter, key, reason, detail)
            return None
        first_silence = reason == "unsupported" and (known is None or known.reason != reason)
        self.items[key] = Unreadable(reason, now, quantities, detail, now, not first_silence)
        if first_silence:  # once may be a busy meter: wait for a second silence
            log.debug("meter %s: %s silent once while the meter answers", self.meter, key)
            return None
        log.warning(
            "meter %s: %s %s (%s); not asked again for %s", self.meter, key, reason, detail, REPROBE
        )
        return Event(
            meter=self.meter,
            type=EventType.QUANTITY_UNAVAILABLE,
            start=now,
            detected=now,
            details={
                "identifier": key,
                "reason": reason,
                "quantities": list(quantities),
                "detail": detail[:200],
            },
        )

    def answered(self, key: str, now: datetime) -> Event | None:
        """``key`` was read: forget it as unreadable (event if it was)."""
        known = self.items.pop(key, None)
        if known is None:
            return None
        self.dirty = True
        log.warning("meter %s: %s answers again", self.meter, key)
        return Event(
            meter=self.meter,
            type=EventType.QUANTITY_AVAILABLE,
            start=known.since,
            end=now,
            detected=now,
            details={"identifier": key, "quantities": list(known.quantities)},
        )

    def unavailable(self) -> list[str]:
        """Quantities not collected now (for the health report)."""
        return sorted({q for u in self.items.values() if u.confirmed for q in u.quantities})

    def to_json(self) -> dict[str, Any]:
        return {
            "items": {
                k: {
                    "reason": u.reason,
                    "since": u.since.isoformat(),
                    "quantities": list(u.quantities),
                    "detail": u.detail,
                    "checked": u.checked.isoformat() if u.checked else None,
                    "confirmed": u.confirmed,
                }
                for k, u in self.items.items()
            },
            "counts": self.counts,
        }

    @classmethod
    def from_json(cls, meter: str, value: Any) -> Capabilities:
        """Capabilities stored by ``to_json`` (an unusable value starts afresh)."""
        caps = cls(meter)
        if not isinstance(value, dict):
            return caps
        try:
            for key, u in dict(value.get("items", {})).items():
                caps.items[str(key)] = Unreadable(
                    str(u["reason"]),
                    datetime.fromisoformat(u["since"]),
                    tuple(u.get("quantities", ())),
                    str(u.get("detail", "")),
                    datetime.fromisoformat(u["checked"]) if u.get("checked") else None,
                    bool(u.get("confirmed", True)),
                )
            caps.counts.update({k: int(v) for k, v in dict(value.get("counts", {})).items()})
        except (KeyError, TypeError, ValueError):
            log.error("meter %s: stored capabilities unusable; starting afresh", meter)
            return cls(meter)
        return caps


def state_key(meter: str) -> str:
    """The store state key of a meter's capabilities."""
    return f"caps:{meter}"
