"""When prepayment may act: the next instant inside the disconnect window, the end of the quiet
hours for customer notices, and when a refused action is tried again."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection

from headend.guards import GuardSettings, check_window
from headend.guards import store as guard_store
from headend.prepay.settings import PrepaySettings

# rules whose refusal lasts: try again after this rather than after ``action_retry_minutes``
LONG_WAIT = {"keep_power": timedelta(hours=24), "pause": timedelta(hours=1)}


def next_allowed(conn: Connection, guards: GuardSettings, t: datetime) -> datetime:
    """The first instant at or after ``t`` inside the disconnect window (holidays, weekends,
    declared extreme-weather days and night hours excluded)."""
    zone = guards.zone
    state = guard_store.load_state(conn, t.astimezone(zone).date())
    local = t.astimezone(zone)
    for n in range(0, 60):
        day = local.date() + timedelta(days=n)
        opening = datetime.combine(day, guards.window_start, zone)
        candidate = max(opening, local) if n == 0 else opening
        if candidate.timetz().replace(tzinfo=None) >= guards.window_end:
            continue
        if not check_window(guards, state, candidate).refused:
            return candidate.astimezone(t.tzinfo)
    return t + timedelta(days=60)


def retry_at(
    conn: Connection, rule: str, now: datetime, guards: GuardSettings, s: PrepaySettings
) -> datetime:
    if rule.startswith("window"):
        return next_allowed(conn, guards, now + timedelta(minutes=1))
    return now + LONG_WAIT.get(rule, timedelta(minutes=s.action_retry_minutes))


def quiet_until(settings: PrepaySettings, zone: Any, now: datetime) -> datetime:
    """``now``, or the end of the quiet hours ``now`` falls in."""
    if settings.quiet_hours is None:
        return now
    begin, end = settings.quiet_hours
    local = now.astimezone(zone)
    clock = local.time().replace(tzinfo=None)
    inside = (begin <= clock or clock < end) if begin > end else (begin <= clock < end)
    if not inside:
        return now
    day = local.date() if clock < end else local.date() + timedelta(days=1)
    return datetime.combine(day, end, zone).astimezone(now.tzinfo)
