"""The guard rails' run-time state in the database: the pause switch, declared extreme-weather
days, and the recent-disconnect counts the hourly limits need.  Every change is audited."""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timedelta

from sqlalchemy import Connection, and_, delete, func, not_, select

from headend import audit
from headend.db.ops_tables import command_targets, commands, extreme_weather_days, guard_switches
from headend.guards.policy import DISCONNECTS, GuardState, RecentCounts

PAUSE = "pause"
WINDOW = timedelta(hours=1)


def load_state(conn: Connection, today: date | None = None) -> GuardState:
    """The pause switch and the declared extreme-weather days (from ``today`` on, if given)."""
    row = conn.execute(select(guard_switches).where(guard_switches.c.name == PAUSE)).one_or_none()
    days = select(extreme_weather_days.c.day)
    if today is not None:
        days = days.where(extreme_weather_days.c.day >= today - timedelta(days=1))
    return GuardState(
        paused=bool(row and row.on),
        pause_reason=row.reason if row and row.on else None,
        extreme_weather_days=frozenset(conn.execute(days).scalars()),
    )


def set_pause(conn: Connection, on: bool, reason: str | None, *, actor: str, now: datetime) -> None:
    """Switch the fleet-wide pause of all disconnects on or off (audited)."""
    conn.execute(delete(guard_switches).where(guard_switches.c.name == PAUSE))
    conn.execute(
        guard_switches.insert().values(name=PAUSE, on=on, reason=reason, set_by=actor, set_at=now)
    )
    audit.append(
        conn,
        actor,
        "guard.pause" if on else "guard.resume",
        "disconnects",
        {"reason": reason},
        at=now,
    )


def declare_extreme_weather(
    conn: Connection, day: date, reason: str | None, *, actor: str, now: datetime
) -> None:
    """Declare ``day`` (the utility's local date) an extreme-weather day (audited)."""
    conn.execute(delete(extreme_weather_days).where(extreme_weather_days.c.day == day))
    conn.execute(
        extreme_weather_days.insert().values(
            day=day, reason=reason, declared_by=actor, declared_at=now
        )
    )
    audit.append(conn, actor, "guard.extreme_weather", day.isoformat(), {"reason": reason}, at=now)


def withdraw_extreme_weather(conn: Connection, day: date, *, actor: str, now: datetime) -> bool:
    """Withdraw a declaration; False if ``day`` was not declared (audited when it was)."""
    gone = conn.execute(delete(extreme_weather_days).where(extreme_weather_days.c.day == day))
    if gone.rowcount:
        audit.append(conn, actor, "guard.extreme_weather_withdrawn", day.isoformat(), {}, at=now)
    return bool(gone.rowcount)


def extreme_weather_list(conn: Connection, since: date | None = None) -> list[dict[str, object]]:
    """Declared days (from ``since`` on), with who declared them and why."""
    query = select(extreme_weather_days).order_by(extreme_weather_days.c.day)
    if since is not None:
        query = query.where(extreme_weather_days.c.day >= since)
    return [dict(r._mapping) for r in conn.execute(query)]


def recent_counts(
    conn: Connection, now: datetime, *, exclude_command: str | None = None
) -> RecentCounts:
    """Meters in disconnects approved within the last hour, fleet-wide and per area.

    Counted: disconnects approved (by policy or a supervisor) in ``(now - 1 h, now]`` that were
    not cancelled and did not expire unsent.
    """
    c, t = commands, command_targets
    query = (
        select(t.c.area, func.count())
        .select_from(t.join(c, c.c.id == t.c.command_id))
        .where(
            c.c.action.in_([a.value for a in DISCONNECTS]),
            c.c.approved_at > now - WINDOW,
            c.c.state != "cancelled",
            not_(and_(c.c.state == "expired", c.c.sent_at.is_(None))),
        )
        .group_by(t.c.area)
    )
    if exclude_command is not None:
        query = query.where(c.c.id != exclude_command)
    by_area = Counter({area or "": int(n) for area, n in conn.execute(query)})
    return RecentCounts(fleet=sum(by_area.values()), by_area=dict(by_area))


def operator_unapproved(conn: Connection, operator: str, now: datetime, minutes: int) -> int:
    """Meters in ``operator``'s disconnects created in the last ``minutes`` without a supervisor.

    Counted: disconnects the policy let through on their own (approved, no ``approved_by``) that
    were not cancelled and did not expire unsent.  What a supervisor approved was reviewed and
    does not count; what awaits approval has not gone ahead.
    """
    if minutes <= 0:
        return 0
    c = commands.c
    query = select(func.coalesce(func.sum(c.meter_count), 0)).where(
        c.created_by == operator,
        c.action.in_([a.value for a in DISCONNECTS]),
        c.created_at > now - timedelta(minutes=minutes),
        c.approved_at.is_not(None),
        c.approved_by.is_(None),
        c.state != "cancelled",
        not_(and_(c.state == "expired", c.sent_at.is_(None))),
    )
    return int(conn.execute(query).scalar_one())
