"""The disconnect guard rails as a pure policy: facts in, a decision out (no I/O, clock injected).

Rules, checked in this order; the first that refuses names itself in the refusal:

    pause                       a fleet-wide "pause all disconnects" switch is on
    keep_power                  a targeted meter is a keep-power (保电) customer: never tripped
    window.holiday              the local date is a public holiday
    window.extreme_weather      the local date is a declared extreme-weather day
    window.weekday              the local date is not a disconnect weekday (weekends)
    window.hours                the local time is outside the disconnect hours (night)
    hourly_limit.area           the area's meters tripped in the last hour would exceed its limit
    hourly_limit.fleet          the fleet's meters tripped in the last hour would exceed its limit
    supervisor_approval         more than N meters, counting the requesting operator's own
                                disconnects that went ahead without a supervisor in the last
                                ``supervisor_window_minutes``: allowed only once a second user, a
                                supervisor, approves (a decision of "needs approval", not a refusal)

Only disconnects (``relay_trip``) are guarded; every other action is allowed here (roles and area
scopes are checked by the caller).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from typing import Literal

import holidays

from headend.guards.settings import GuardSettings
from protocols.uplink import CommandAction

DISCONNECTS = frozenset({CommandAction.RELAY_TRIP})


@dataclass(frozen=True)
class MeterFacts:
    """What the guard rails need to know about one targeted meter."""

    meter: str
    gateway: str
    area: str | None
    keep_power: bool = False


@dataclass(frozen=True)
class GuardState:
    """Switches operators set at run time (stored in the database)."""

    paused: bool = False
    pause_reason: str | None = None
    extreme_weather_days: frozenset[date] = frozenset()


@dataclass(frozen=True)
class RecentCounts:
    """Meters disconnected (or queued to be) in the trailing hour, fleet-wide and per area."""

    fleet: int = 0
    by_area: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    """``allow``, ``needs_approval`` (rule says why) or ``refuse`` (rule and message say why)."""

    outcome: Literal["allow", "needs_approval", "refuse"]
    rule: str | None = None
    message: str = ""

    @property
    def allowed(self) -> bool:
        return self.outcome == "allow"

    @property
    def refused(self) -> bool:
        return self.outcome == "refuse"


ALLOW = Decision("allow")


def _refuse(rule: str, message: str) -> Decision:
    return Decision("refuse", rule, message)


@lru_cache(maxsize=64)
def _holidays(country: str, subdivision: str | None, year: int) -> holidays.HolidayBase:
    return holidays.country_holidays(country, subdiv=subdivision, years=year)


def holiday_name(settings: GuardSettings, day: date) -> str | None:
    """The public holiday ``day`` is in the configured country, if any."""
    if not settings.holiday_country:
        return None
    calendar = _holidays(settings.holiday_country, settings.holiday_subdivision, day.year)
    name = calendar.get(day)
    return str(name) if name else None


def check_window(settings: GuardSettings, state: GuardState, now: datetime) -> Decision:
    """Whether ``now`` (aware) falls inside the disconnect window in the utility's zone."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    local = now.astimezone(settings.zone)
    day = local.date()
    holiday = holiday_name(settings, day)
    if holiday:
        return _refuse("window.holiday", f"{day} is a public holiday ({holiday}): no disconnects")
    if day in state.extreme_weather_days:
        return _refuse(
            "window.extreme_weather", f"{day} is a declared extreme-weather day: no disconnects"
        )
    if local.isoweekday() not in settings.weekdays:
        return _refuse(
            "window.weekday",
            f"{day} is a {local:%A}: disconnects only on weekdays "
            f"{sorted(settings.weekdays)} (ISO numbers)",
        )
    clock = local.time().replace(tzinfo=None)
    if not settings.window_start <= clock < settings.window_end:
        return _refuse(
            "window.hours",
            f"{clock:%H:%M} {settings.timezone} is outside the disconnect hours "
            f"{settings.window_start:%H:%M}-{settings.window_end:%H:%M}",
        )
    return ALLOW


def _limits(
    settings: GuardSettings, meters: Sequence[MeterFacts], counts: RecentCounts
) -> Decision:
    per_area = Counter(m.area or "" for m in meters)
    for area, n in sorted(per_area.items()):
        before = counts.by_area.get(area, 0)
        if before + n > settings.hourly_limit_area:
            return _refuse(
                "hourly_limit.area",
                f"area {area or '(none)'!r}: {before} meters disconnected in the last hour + {n} "
                f"requested exceeds the limit of {settings.hourly_limit_area} per hour",
            )
    if counts.fleet + len(meters) > settings.hourly_limit_fleet:
        return _refuse(
            "hourly_limit.fleet",
            f"{counts.fleet} meters disconnected fleet-wide in the last hour + {len(meters)} "
            f"requested exceeds the limit of {settings.hourly_limit_fleet} per hour",
        )
    return ALLOW


def evaluate(
    action: CommandAction,
    meters: Iterable[MeterFacts],
    now: datetime,
    settings: GuardSettings,
    state: GuardState,
    counts: RecentCounts,
    *,
    supervisor_approved: bool = False,
    operator_recent: int = 0,
) -> Decision:
    """Decide whether ``action`` on ``meters`` may go ahead at ``now``.

    ``supervisor_approved`` is true when a second user with the supervisor role has approved
    the request; every other rule is checked again at approval time.  ``operator_recent``: meters
    in the requesting operator's disconnects of the supervisor window that needed no approval.
    """
    targets = list(meters)
    if action not in DISCONNECTS:
        return ALLOW
    if state.paused:
        why = f" ({state.pause_reason})" if state.pause_reason else ""
        return _refuse("pause", f"all disconnects are paused fleet-wide{why}")
    kept = sorted(m.meter for m in targets if m.keep_power)
    if kept:
        return _refuse("keep_power", f"keep-power meters are never disconnected: {', '.join(kept)}")
    for decision in (check_window(settings, state, now), _limits(settings, targets, counts)):
        if decision.refused:
            return decision
    counted = len(targets) + operator_recent
    if counted > settings.supervisor_threshold and not supervisor_approved:
        earlier = (
            f" (with {operator_recent} meters of this operator's disconnects of the last "
            f"{settings.supervisor_window_minutes} min)"
            if operator_recent
            else ""
        )
        return Decision(
            "needs_approval",
            "supervisor_approval",
            f"a disconnect of {len(targets)} meters{earlier}, more than "
            f"{settings.supervisor_threshold}, needs approval by a second user, a supervisor",
        )
    return ALLOW
