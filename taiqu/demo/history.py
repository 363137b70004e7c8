"""The back-filled week: once every gateway's first back-fill is in, the demo orders its analytics.

The gateways read the last seven daily freezes of every DL/T 645 meter when they start; a
newcomer should see the week's line loss, collection success and suspects within the first
two minutes, not after the next nightly run.  ``History.step`` looks (a few requests at a time)
for each meter's oldest freeze, and when all are in — or after ``PATIENCE_S`` with what arrived —
asks the head-end to recompute those days (``POST /api/v1/analytics/recompute``), as an
operator would after commissioning an area.  Events of those days keep arriving for a while
(the meters' own records, read at the gateways' first events sweeps): for ``WATCH_S`` after the
first computation, new events dated in the week order another one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from taiqu.demo.client import Api

PATIENCE_S = 120.0
WATCH_S = 120.0
ENERGY = "energy.active.import.total"


@dataclass
class History:
    """Waits for the oldest freeze of every meter, then orders the recompute (once)."""

    api: Api
    meters: list[str]  # meters that keep daily freezes (DL/T 645)
    first: datetime  # the oldest freeze the back-fill brings (local midnight)
    last_day: date  # the last complete day (the day before the clock's start)
    say: Callable[[str], None]
    missing: set[str] = field(init=False)
    began: float = field(default_factory=time.monotonic)
    done: bool = False
    computed_at: float = 0.0
    events: int = -1  # events dated in the week at the last computation

    def __post_init__(self) -> None:
        self.missing = set(self.meters)

    def _has_oldest_freeze(self, meter: str) -> bool:
        query = {
            "kind": "daily_frozen",
            "quantity": ENERGY,
            "from": (self.first - timedelta(hours=1)).isoformat(),
            "to": (self.first + timedelta(hours=1)).isoformat(),
            "limit": "1",
        }
        page: Any = self.api.call("GET", f"/api/v1/meters/{meter}/readings", query=query)
        return bool(page["items"])

    def _events(self) -> int:
        end = datetime.combine(self.last_day + timedelta(days=1), self.first.timetz())
        query = {"from": self.first.isoformat(), "to": end.isoformat(), "limit": "1000"}
        return len(self.api.call("GET", "/api/v1/events", query=query)["items"])

    def _recompute(self) -> dict[str, Any]:
        self.events = self._events()
        body = {"from": self.first.date().isoformat(), "to": self.last_day.isoformat()}
        summary: dict[str, Any] = self.api.call("POST", "/api/v1/analytics/recompute", body)
        self.computed_at = time.monotonic()
        return summary

    def step(self) -> None:
        """Look once; recompute when everything (or, after a while, enough) is in."""
        if self.done:
            if time.monotonic() - self.computed_at < WATCH_S and self._events() != self.events:
                summary = self._recompute()
                self.say(f"new events in the back-filled week: {summary['suspects']} suspects")
            return
        for meter in sorted(self.missing):
            if self._has_oldest_freeze(meter):
                self.missing.discard(meter)
        waited = time.monotonic() - self.began
        if self.missing and waited < PATIENCE_S:
            return
        summary = self._recompute()
        self.done = True
        late = f" ({len(self.missing)} meters still missing)" if self.missing else ""
        self.say(
            f"back-filled week in{late}: line loss, collection and suspects of "
            f"{self.first.date()} … {self.last_day} computed ({summary['losses']} loss results, "
            f"{summary['suspects']} suspects)"
        )
