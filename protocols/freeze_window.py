"""The freeze window: when a meter's clock may be stepped.

Meters freeze their registers on the whole hour (the daily freeze at 00:00, hourly and settlement
freezes on the hour).  A clock step across such an instant makes the meter freeze twice or not at
all, so every clock set — the gateway's broadcast time sync, a DL/T 698.45 SET, the head-end's
sealed ESAM writes — keeps ``margin`` (10 minutes by default) away from every whole hour, on the
master's time and on the meter's own time (master time + drift) alike: a meter four minutes slow
must not be stepped across its own 00:00 freeze.

Times are wall-clock times in the meters' zone, naive or aware (only the minutes into the hour
count).
"""

from __future__ import annotations

from datetime import datetime, timedelta

FREEZE_MARGIN = timedelta(minutes=10)
_HOUR = timedelta(hours=1)


def in_freeze_window(local: datetime, margin: timedelta = FREEZE_MARGIN) -> bool:
    """Whether ``local`` is within ``margin`` of a whole hour (either side)."""
    into = timedelta(minutes=local.minute, seconds=local.second, microseconds=local.microsecond)
    return into < margin or _HOUR - into < margin


def leave_window(local: datetime, margin: timedelta = FREEZE_MARGIN) -> datetime:
    """The first time at or after ``local`` that is clear of the freeze window."""
    if not in_freeze_window(local, margin):
        return local
    hour = local.replace(minute=0, second=0, microsecond=0)
    if local - hour >= margin:  # in the last minutes before the next hour
        hour += _HOUR
    return hour + margin


def freeze_retry_at(
    now_local: datetime, drift: timedelta, margin: timedelta = FREEZE_MARGIN
) -> datetime | None:
    """None when both ``now_local`` and the meter's time (``now_local + drift``) are clear of the
    window; else the master time at which each has left the window it is in (the later of the
    two: the earliest the answer may change; it may fall in the other's window, so ask again)."""
    meter_local = now_local + drift
    if not (in_freeze_window(now_local, margin) or in_freeze_window(meter_local, margin)):
        return None
    return max(leave_window(now_local, margin), leave_window(meter_local, margin) - drift)
