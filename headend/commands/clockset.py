"""The time-sync policy for clock sets the head-end orders on ESAM meters.

A DL/T 645 time sync the gateway carries out (broadcast 08H, or a 698 SET) is held to the
gateway's policy (``gateway/clock/sync.py``).  An ESAM meter's clock is set instead by two sealed
14H writes the head-end's encryption service makes (``headend.commands.secured``): the gateway
only relays them, so the head-end holds them to the same rules, per meter::

    |last known drift| > max_step_s               → refused step_too_large   (a site visit)
    a clock set of the meter executed this local
    day, or one still under way                   → refused already_today    (once a day)
    head-end time or the meter's own time (head-end
    time + last known drift) within ``margin`` of
    a whole hour (midnight included)              → refused freeze_window    (retry_at given;
                                                     the window is ``protocols.freeze_window``)

checked when the command is created (refused with the rule, audited, nothing stored; the meters
are held until the creating transaction ends, so two creations cannot both pass); the freeze
window is checked again when the writes are sealed (a command may wait for approval): then the
target fails with the rule's name and nothing is written.  The last known drift is the meter's
latest reading that carried its clock (``meter_time − gateway_time``), when no older than
``drift_max_age_h``; without one the step rule cannot be judged and the meter's time is taken as
the head-end's.
The result is verified by reading the clock back (``decisions._clock_checked``).

``[commands.clock_set]`` of headend.toml::

    margin_minutes = 10      # meters freeze on the hour: no set this close to one (0-29)
    max_step_s = 3600        # a larger step needs a site visit (broadcasts stop at 300 s)
    once_a_day = true
    drift_max_age_h = 48
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection, select

from headend.archive.effective import in_force
from headend.commands.states import FINAL, State
from headend.db.ops_tables import command_targets, commands
from headend.db.tables import meters, readings
from protocols.freeze_window import freeze_retry_at, leave_window
from protocols.uplink import CommandAction


class ClockSetPolicy(BaseModel):
    """``[commands.clock_set]``: the limits (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    margin_minutes: int = Field(default=10, ge=0, le=29)
    max_step_s: float = Field(default=3600.0, gt=0, le=7 * 86400)
    once_a_day: bool = True
    drift_max_age_h: float = Field(default=48.0, gt=0, le=24 * 31)

    @property
    def margin(self) -> timedelta:
        return timedelta(minutes=self.margin_minutes)


@dataclass(frozen=True)
class ClockRefusal:
    """A rule the clock set breaks: its name, a message naming the meter, when to retry."""

    rule: str  # step_too_large | already_today | freeze_window
    message: str
    retry_at: datetime | None = None  # meter-zone local time


def judge(
    meter: str,
    now_local: datetime,
    drift_s: float | None,
    last_set_local: datetime | None,
    policy: ClockSetPolicy,
) -> ClockRefusal | None:
    """The rule a clock set of ``meter`` now breaks, or None (times naive, meter zone)."""
    if drift_s is not None and abs(drift_s) > policy.max_step_s:
        return ClockRefusal(
            "step_too_large",
            f"meter {meter}: its clock is {drift_s:+.0f} s off, beyond the {policy.max_step_s:g} s"
            " a remote clock set may step it: a site visit",
        )
    if (
        policy.once_a_day
        and last_set_local is not None
        and last_set_local.date() >= now_local.date()
    ):
        tomorrow = datetime.combine(now_local.date() + timedelta(days=1), time())
        return ClockRefusal(
            "already_today",
            f"meter {meter}: its clock was set (or a set is under way) today; once a day",
            leave_window(tomorrow, policy.margin),
        )
    retry = freeze_retry_at(now_local, timedelta(seconds=drift_s or 0.0), policy.margin)
    if retry is not None:
        return ClockRefusal(
            "freeze_window",
            f"meter {meter}: within {policy.margin_minutes} min of a whole hour (meters freeze on"
            f" the hour); retry at {retry:%H:%M}",
            retry,
        )
    return None


def _esam_meters(conn: Connection, ids: list[str]) -> list[str]:
    m = meters.c
    found: list[str] = []
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        query = select(m.id).where(m.id.in_(chunk), m.esam.is_(True), in_force(meters, None))
        found.extend(conn.execute(query).scalars())
    return sorted(set(found))


def last_drift(conn: Connection, meter: str, now: datetime, max_age: timedelta) -> float | None:
    """Meter clock − gateway clock (s) at the meter's latest reading that carried its clock."""
    r = readings.c
    row = conn.execute(
        select(r.gateway_time, r.meter_time)
        .where(r.meter == meter, r.meter_time.is_not(None), r.time > now - max_age)
        .order_by(r.time.desc())
        .limit(1)
    ).first()
    return None if row is None else (row.meter_time - row.gateway_time).total_seconds()


def last_set(conn: Connection, meter: str, now: datetime, zone: ZoneInfo) -> datetime | None:
    """When the meter's clock was last set (local); a clock set still under way counts as now."""
    t = command_targets.c
    rows = conn.execute(
        select(t.state, t.at)
        .select_from(command_targets.join(commands, commands.c.id == t.command_id))
        .where(t.meter == meter, commands.c.action == CommandAction.TIME_SYNC.value)
    ).all()
    times = [
        row.at if State(row.state) is State.EXECUTED and row.at is not None else now
        for row in rows
        if State(row.state) is State.EXECUTED or State(row.state) not in FINAL
    ]
    return max(times).astimezone(zone).replace(tzinfo=None) if times else None


def hold(conn: Connection, esam: list[str]) -> None:
    """Lock the archive rows of the (sorted) ``esam`` meters until the transaction ends.

    Two clock sets of one meter created at the same instant would otherwise both read "none
    today" before either commits (PostgreSQL, READ COMMITTED); the second now waits here for the
    first and then reads its command.  Rows are taken in id order, so creators never deadlock
    among themselves.  SQLite compiles ``FOR UPDATE`` away: ``BEGIN IMMEDIATE`` has serialised
    the writers already.
    """
    m = meters.c
    for start in range(0, len(esam), 500):
        chunk = esam[start : start + 500]
        query = select(m.id).where(m.id.in_(chunk)).order_by(m.id, m.valid_from)
        conn.execute(query.with_for_update()).all()


def refusal(
    conn: Connection, targets: Iterable[str], now: datetime, zone: ZoneInfo, policy: ClockSetPolicy
) -> ClockRefusal | None:
    """The first rule a clock set of the ESAM meters among ``targets`` breaks (creation, inside
    the creating transaction: the meters are held until it ends, see ``hold``)."""
    now_local = now.astimezone(zone).replace(tzinfo=None)
    max_age = timedelta(hours=policy.drift_max_age_h)
    esam = _esam_meters(conn, sorted(set(targets)))
    hold(conn, esam)
    for meter in esam:
        drift = last_drift(conn, meter, now, max_age)
        found = judge(meter, now_local, drift, last_set(conn, meter, now, zone), policy)
        if found is not None:
            return found
    return None
