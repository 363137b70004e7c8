"""What a meter's firmware decides by its personality (``simulators.personalities``).

- **Relay timing**: a trip command is acknowledged and shown at once in status word 3 (bit 6,
  relay commanded to trip); the relay opens ``trip_delay_s`` later.  With
  ``trip_defer_above_a`` the meter does not break a high current: while the current at the due
  instant is above it, the trip waits ``trip_defer_step_s`` more, up to ``trip_defer_max_s``.
  The instant is computed when the command arrives (the load is a pure function of time), so
  the relay state at any later time is known at once.  A close or keep-power command before
  the relay opened cancels the pending trip.
- **Broadcast time sync** (``strict_clock``): accepted only when the new time is within
  ``sync_window_s`` of the meter's clock, at most ``sync_per_day`` times a (meter-local) day,
  and never within ``sync_midnight_guard_s`` of midnight on the meter's clock (the rules of the
  State Grid smart-meter specifications, Q/GDW 1354/1355: ±5 min, once a day, not around
  00:00 when the meter freezes).  Every broadcast is logged with its outcome (ground truth).
- **Busy at midnight**: silent for ``busy_after_midnight_s`` after 00:00 on the meter's clock.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from simulators.meter import Meter

ACCEPTED = "accepted"


def _load_current(meter: Meter, ts: float) -> float:
    """The current the load draws at ``ts`` with the relay still closed (A).

    Read from the timeline as scheduled, without settling local prepay up to ``ts`` (that would
    decide a prepay trip in the future before a top-up could prevent it).
    """
    state = meter.timeline.at(ts)
    voltage = meter.voltage(ts)
    if not (state["installed"] and state["powered"]) or voltage == 0:
        return 0.0
    power = meter.source.power_kw(ts) * state["factor"]
    return float(abs(power) * 1000.0 / (voltage * meter.spec.profile.power_factor))


def trip_instant(meter: Meter, ts: float) -> float:
    """When a trip commanded at ``ts`` opens the relay."""
    p = meter.spec.personality
    due = ts + p.trip_delay_s
    if p.trip_defer_above_a is None:
        return due
    limit = due + p.trip_defer_max_s
    while due < limit and _load_current(meter, due) > p.trip_defer_above_a:
        due = min(limit, due + p.trip_defer_step_s)
    return due


def _seconds_of_day(local: datetime) -> float:
    return local.hour * 3600 + local.minute * 60 + local.second + local.microsecond / 1e6


def broadcast_outcome(meter: Meter, ts: float, when: datetime) -> str:
    """``accepted``, or why the meter ignores a broadcast time sync to ``when`` at ``ts``."""
    p = meter.spec.personality
    if not p.strict_clock:
        return ACCEPTED
    shown = meter.meter_time(ts)
    if abs((when - shown).total_seconds()) > p.sync_window_s:
        return "outside_window"
    guard = p.sync_midnight_guard_s
    for local in (shown, when):
        second = _seconds_of_day(local)
        if second < guard or second > 86400 - guard:
            return "near_midnight"
    today = shown.date()
    done = sum(1 for _, day, outcome in meter.sync_log if outcome == ACCEPTED and day == today)
    if done >= p.sync_per_day:
        return "already_synced_today"
    return ACCEPTED


def busy(meter: Meter, ts: float) -> bool:
    """Whether the meter is busy freezing (silent) at ``ts``."""
    window = meter.spec.personality.busy_after_midnight_s
    return bool(window) and _seconds_of_day(meter.meter_time(ts)) < window


__all__ = ["ACCEPTED", "broadcast_outcome", "busy", "trip_instant"]
