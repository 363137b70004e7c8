"""The time-sync policy on clock sets the head-end orders on ESAM meters (secured flow).

Before this policy the head-end sealed a clock set whenever asked: at 10:00 (the meters' hourly
freeze), twice a day, or with a step of hours.  Each rule is tested at creation (refused with its
name, audited, nothing stored, the meter untouched) and the freeze window again at sealing.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, insert, select

from headend import audit
from headend.commands.clockset import ClockSetPolicy, judge
from headend.commands.settings import CommandSettings
from headend.db import reading, writing
from headend.db.ops_tables import commands
from headend.db.tables import readings
from tests.headend.ops_support import cheap_hashes_fixture, ops_fixture  # noqa: F401
from tests.headend.test_commands_secured import ESAM_METER, PLAIN_METER, Rig, flag_esam
from tests.headend.test_commands_secured import key_file as key_file  # the fixture

POLICY = ClockSetPolicy()


@pytest.fixture(name="rig")
def rig_fixture(ops, key_file):
    """The secured-flow rig of ``test_commands_secured`` (head-end, thin gateway, ESAM meter)."""
    flag_esam(ops)
    return Rig(ops, key_file)


AT = datetime(2026, 3, 10, 10, 20)  # naive meter-zone local


@pytest.mark.parametrize(
    ("local", "drift", "last", "rule"),
    [
        (AT, None, None, None),
        (AT.replace(minute=0), None, None, "freeze_window"),  # the hourly freeze
        (AT.replace(minute=55), None, None, "freeze_window"),  # five minutes before one
        (AT.replace(hour=23, minute=54), None, None, "freeze_window"),  # before midnight
        (AT.replace(minute=45), 7 * 60.0, None, "freeze_window"),  # the meter's own 10:52
        (AT.replace(minute=15), -7 * 60.0, None, "freeze_window"),  # the meter's own 10:08
        (AT, 3601.0, None, "step_too_large"),
        (AT, -3601.0, None, "step_too_large"),
        (AT, 3599.0, None, None),  # beyond a broadcast's 300 s: what a secured set is for
        (AT, None, AT.replace(hour=8), "already_today"),
        (AT, None, AT - timedelta(days=1), None),
    ],
)
def test_each_rule(local, drift, last, rule):
    found = judge("m1", local, drift, last, POLICY)
    assert (found.rule if found else None) == rule
    if found is not None:
        assert "m1" in found.message


def test_retry_times_name_when_the_rule_stops_applying():
    freeze = judge("m1", AT.replace(minute=55), None, None, POLICY)
    assert freeze is not None and freeze.retry_at == AT.replace(hour=11, minute=10)
    meter_side = judge("m1", AT.replace(minute=45), 7 * 60.0, None, POLICY)
    assert meter_side is not None and meter_side.retry_at == AT.replace(hour=11, minute=3)
    today = judge("m1", AT, None, AT.replace(hour=8), POLICY)
    assert today is not None and today.retry_at == datetime(2026, 3, 11, 0, 10)
    assert judge("m1", AT.replace(minute=0), None, None, ClockSetPolicy(margin_minutes=0)) is None


def test_the_policy_is_configured_under_commands_clock_set():
    settings = CommandSettings.model_validate({"clock_set": {"max_step_s": 600}})
    assert settings.clock_set.max_step_s == 600 and settings.clock_set.margin_minutes == 10
    with pytest.raises(ValueError):
        CommandSettings.model_validate({"clock_set": {"margin_minutes": 30}})


def _refused(ops, response, rule: str) -> None:
    assert response.status_code == 409, response.text
    assert response.json()["detail"]["rule"] == rule
    with reading(ops.engine) as conn:
        entry = audit.entries(conn, action="command.refused", limit=1000)[-1]
        assert conn.execute(select(func.count()).select_from(commands)).scalar() == 0
    assert json.loads(entry.detail)["rule"] == rule


def _drift_reading(ops, meter: str, drift_s: float) -> None:
    """A reading whose meter clock was ``drift_s`` off (as the ingest stores one)."""
    now = ops.clock.now() - timedelta(minutes=15)
    with writing(ops.engine) as conn:
        conn.execute(
            insert(readings).values(
                meter=meter, quantity="energy.active_import", time=now, kind="interval",
                value="1.0", gateway="gw2", gateway_time=now,
                meter_time=now + timedelta(seconds=drift_s), flags="",
            )
        )  # fmt: skip


def test_a_clock_set_at_the_hourly_freeze_is_refused(rig):
    # 10:00: the old head-end sealed and sent it; the meter's freeze would have been disturbed
    r = rig.ops.command("olga", action="time_sync", meters=[ESAM_METER])
    _refused(rig.ops, r, "freeze_window")
    rig.cycle(rounds=2)
    assert rig.gateway.esam.log == []


def test_a_plain_meters_time_sync_is_left_to_the_gateways_policy(rig):
    r = rig.ops.command("olga", action="time_sync", meters=[PLAIN_METER])
    assert r.status_code == 201, r.text  # the gateway judges it (gateway/clock/sync.py)


def test_the_meters_own_clock_counts_for_the_freeze_window(rig):
    rig.ops.clock.advance(45 * 60)  # 10:45 head-end; the meter's clock says 10:52
    _drift_reading(rig.ops, ESAM_METER, 7 * 60)
    r = rig.ops.command("olga", action="time_sync", meters=[ESAM_METER])
    _refused(rig.ops, r, "freeze_window")


def test_a_step_beyond_the_limit_needs_a_site_visit(rig):
    rig.ops.clock.advance(20 * 60)
    _drift_reading(rig.ops, ESAM_METER, 2 * 3600)
    r = rig.ops.command("olga", action="time_sync", meters=[ESAM_METER])
    _refused(rig.ops, r, "step_too_large")
    assert "site visit" in r.json()["detail"]["message"]


def test_once_a_day_including_a_set_still_under_way(rig):
    rig.ops.clock.advance(20 * 60)
    first = rig.command("time_sync", ESAM_METER)
    # while the first is under way, a second is refused
    pending = rig.ops.command("olga", action="time_sync", meters=[ESAM_METER])
    assert pending.status_code == 409 and pending.json()["detail"]["rule"] == "already_today"
    rig.cycle()
    assert rig.view(first)["targets"][0]["state"] == "executed"
    rig.ops.clock.advance(3600)
    again = rig.ops.command("olga", action="time_sync", meters=[ESAM_METER])
    assert again.status_code == 409 and again.json()["detail"]["rule"] == "already_today"
    writes = [e for e in rig.gateway.esam.log if e.kind == "write"]
    assert len(writes) == 2  # date and time, once
    rig.ops.clock.advance(20 * 3600)  # the next day, 07:20
    assert rig.ops.command("olga", action="time_sync", meters=[ESAM_METER]).status_code == 201


def test_the_freeze_window_is_checked_again_when_the_writes_are_sealed(rig):
    sealed: list[int] = []
    real = rig.dispatcher.encryption.seal_write
    rig.dispatcher.encryption.seal_write = lambda *a: sealed.append(a[2]) or real(*a)
    rig.ops.clock.advance(49 * 60 + 50)  # 10:49:50: clear when created
    command_id = rig.command("time_sync", ESAM_METER)
    rig.dispatcher.run_once()  # the authentication goes out
    rig.ops.clock.advance(20)  # its result is acted on at 10:50:10, inside the window
    rig.cycle(rounds=3, pause=1)
    target = rig.view(command_id)["targets"][0]
    assert target["state"] == "failed"
    assert target["reason"].startswith("time-sync policy: freeze_window")
    assert not any(e.kind == "write" for e in rig.gateway.esam.log)  # nothing written
    assert sealed == []  # nor sealed: the encryption machine was not asked
