"""Per-meter availability: back-off after failures, logged once as it starts and once as it ends.

State machine of one meter::

    available ──(a read fails after its retries)──► failing(n=1) ──► skipped until retry_at
        ▲                                               │   each failed retry: n+1, delay doubles
        └──────────────(any reply, even abnormal)───────┘   (base × 2^(n-1), capped at ``cap``)

A meter that answers with an abnormal reply is alive: only silence and garbage count as failures.
The transitions produce ``METER_UNREACHABLE`` / ``METER_RECOVERED`` events for the uplink.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from protocols.model import Event, EventType

log = logging.getLogger("gateway.meters")


@dataclass
class MeterState:
    """Availability of one meter."""

    meter: str
    base: float = 60.0  # seconds of clock time before the first retry
    cap: float = 3600.0
    failures: int = 0
    retry_at: datetime | None = None
    failing_since: datetime | None = None
    last_error: str = ""
    last_ok: datetime | None = None

    @property
    def failing(self) -> bool:
        return self.failures > 0

    def due(self, now: datetime) -> bool:
        """Whether the meter should be polled now (not in back-off)."""
        return self.retry_at is None or now >= self.retry_at

    def delay(self) -> float:
        """The back-off after the current number of failures."""
        return float(min(self.cap, self.base * 2.0 ** max(0, self.failures - 1)))

    def failed(self, now: datetime, error: str) -> Event | None:
        """Record a failed read; the event is returned only when the meter starts failing."""
        self.failures += 1
        self.last_error = error
        self.retry_at = now + timedelta(seconds=self.delay())
        if self.failures > 1:
            return None
        self.failing_since = now
        log.warning("meter %s stopped answering (%s); backing off", self.meter, error)
        return Event(
            meter=self.meter,
            type=EventType.METER_UNREACHABLE,
            start=now,
            detected=now,
            details={"error": error},
        )

    def succeeded(self, now: datetime) -> Event | None:
        """Record a reply; the event is returned only when the meter recovers."""
        self.last_ok = now
        if not self.failures:
            return None
        failures, since = self.failures, self.failing_since
        self.failures, self.retry_at, self.failing_since, self.last_error = 0, None, None, ""
        log.warning("meter %s answers again after %d failed reads", self.meter, failures)
        return Event(
            meter=self.meter,
            type=EventType.METER_RECOVERED,
            start=since,
            end=now,
            detected=now,
            details={"failed_reads": failures},
        )
