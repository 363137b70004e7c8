"""Two clock sets of one ESAM meter created at the same instant: only one may pass once-a-day.

Before the fix, on PostgreSQL (READ COMMITTED) both creating transactions read "no clock set
today" before either committed, and both were stored: the meter's clock would be set twice.
The test holds the first transaction open after its check until the second has either finished
(the race) or is waiting for a lock (serialised), then commits; the second must be refused.
SQLite's ``BEGIN IMMEDIATE`` serialises writers already; the same test checks that it does.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import Connection, Engine, func, select, text, update

from headend.auth.roles import Role, User
from headend.commands import service
from headend.commands.settings import CommandSettings
from headend.db import reading, writing
from headend.db.ops_tables import command_targets
from headend.db.tables import meters
from headend.guards import GuardSettings
from protocols.uplink import CommandAction
from tests.headend.ops_support import TUESDAY_10, meter_id, seed_archive

METER, OTHER = meter_id("A2", 1), meter_id("A2", 3)
NOW = TUESDAY_10 + timedelta(minutes=20)  # clear of the hourly freeze window


@pytest.fixture
def esam(engine: Engine) -> Engine:
    seed_archive(engine)
    with writing(engine) as conn:
        conn.execute(update(meters).where(meters.c.id.in_([METER, OTHER])).values(esam=True))
    return engine


def _clock_set(conn: Connection, meter: str) -> str | service.Refusal:
    return service.create(
        conn,
        User("olga", Role.OPERATOR),
        service.CommandRequest(action=CommandAction.TIME_SYNC, meters=[meter]),
        now=NOW,
        guards=GuardSettings(),
        settings=CommandSettings(),
    )


def _blocked_or_done(engine: Engine, done: threading.Event, limit: float = 10.0) -> str:
    """Wait until the other transaction finished or waits for a lock (PostgreSQL), or a moment
    has passed (SQLite: its writer waits in ``busy_timeout``, which cannot be seen from here)."""
    if engine.dialect.name != "postgresql":
        return "done" if done.wait(0.5) else "waiting"
    deadline = time.monotonic() + limit
    with engine.connect() as probe:
        while time.monotonic() < deadline:
            if done.is_set():
                return "done"
            waiting = probe.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND wait_event_type = 'Lock'"
                )
            ).scalar()
            probe.rollback()
            if waiting:
                return "waiting"
            time.sleep(0.01)
    return "timeout"


def _race(engine: Engine, first_meter: str, second_meter: str) -> dict[str, object]:
    made, done = threading.Event(), threading.Event()
    out: dict[str, object] = {}

    def first() -> None:
        with writing(engine) as conn:
            out["first"] = _clock_set(conn, first_meter)
            made.set()
            out["second_was"] = _blocked_or_done(engine, done)

    def second() -> None:
        try:
            assert made.wait(10)
            with writing(engine) as conn:
                out["second"] = _clock_set(conn, second_meter)
        except Exception as exc:  # reported by the assertions below
            out["second"] = exc
        finally:
            done.set()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads)
    return out


def test_two_clock_sets_created_at_once_cannot_both_pass(esam: Engine) -> None:
    out = _race(esam, METER, METER)
    assert isinstance(out["first"], str), out
    assert isinstance(out["second"], service.Refusal), out  # the old code stored both
    assert out["second"].rule == "already_today"
    with reading(esam) as conn:
        stored = conn.execute(
            select(func.count())
            .select_from(command_targets)
            .where(command_targets.c.meter == METER)
        ).scalar()
    assert stored == 1


def test_clock_sets_of_different_meters_do_not_wait_for_each_other(esam: Engine) -> None:
    out = _race(esam, METER, OTHER)
    assert isinstance(out["first"], str) and isinstance(out["second"], str), out
