"""Case 7 of issue 18: failures an operator sees — an unswitchable meter, capped retries that
escalate, and the stale-data rule applied per meter."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from headend.commands.dispatcher import Dispatcher
from headend.db import reading, writing
from headend.db.prepay_tables import notifications
from headend.db.tables import meters
from protocols.uplink import CommandState
from taiqu.clock import ManualClock
from tests.headend.test_prepay_support import (
    WebhookSink,
    add_readings,
    local,
    open_account,
    put_tariff,
    seed_meters,
)
from tests.headend.test_reminder_disconnect import EXTRA, World, _final, report

OPS = {"prepay": {**EXTRA["prepay"], "operator_urls": ["json://127.0.0.1:9/ops"]}}


def _world(engine, extra=OPS, meter_ids=("m1",)):
    start = local(2026, 3, 10, 9)
    seed_meters(engine, list(meter_ids))
    put_tariff(engine, "res", {"kind": "flat", "price": "1.00"})
    open_account(engine, "acc1", [f"P-{m}" for m in meter_ids], at=start - timedelta(hours=2))
    world = World(engine, ManualClock(start - timedelta(hours=1)), extra)
    with writing(engine) as conn:
        for m in meter_ids:
            add_readings(conn, m, [(start - timedelta(hours=2), "0")])
    world.tick(1)  # m1 used 5 kWh at 1.00: owes 5.00
    _final(world, start)
    return world


def _ops_messages(engine):
    with reading(engine) as conn:
        return [
            (r.template, r.body)
            for r in conn.execute(select(notifications).order_by(notifications.c.id))
            if r.target.startswith("json://")
        ]


def test_an_unswitchable_meter_is_a_visible_failure_told_once(engine):
    seed_world = _world
    world = seed_world(engine)
    with writing(engine) as conn:  # a Modbus meter: it reads, it has no remote control
        conn.execute(update(meters).values(protocol="modbus"))
    world.tick(3, kwh="0")
    [action] = world.actions()
    assert action.state == "failed" and action.rule == "unswitchable"
    assert "m1" in action.message and world.commands() == []
    assert [t for t, _ in _ops_messages(engine)] == ["action_failed"]
    world.tick(5, kwh="0")  # no new action, no new message, every pass
    assert len(world.actions()) == 1 and len(_ops_messages(engine)) == 1


def test_failed_disconnects_stop_after_the_cap_and_escalate(engine):
    world = _world(engine)
    for attempt in range(3):
        world.tick(1, kwh="0")
        Dispatcher(world.engine, lambda t, p: None, world.clock, world.jobs.ctx.guards).run_once()
        report(world, CommandState.FAILED)  # the meter refuses every time
        world.tick(1, kwh="0")
        [action] = world.actions()
        if attempt < 2:
            assert action.state == "waiting" and action.rule == "command_failed"
            world.clock.current = action.next_try - timedelta(hours=1)
    [action] = world.actions()
    assert action.state == "failed" and action.rule == "max_attempts"
    assert len(world.commands()) == 3
    assert [t for t, _ in _ops_messages(engine)][-1] == "action_failed"
    world.tick(24, kwh="0")
    assert len(world.commands()) == 3 and len(world.actions()) == 1


def test_one_fresh_meter_does_not_hide_a_stale_one(engine):
    world = _world(engine, meter_ids=("m1", "m2"))  # m2 has said nothing for hours
    world.clock.current += timedelta(hours=6)
    world.tick(1, kwh="0")  # m1 is fresh; m2's newest reading is 8 h old
    [action] = world.actions()
    assert action.rule == "stale_data" and world.commands() == []
    assert "m2" in action.message


def test_the_webhook_template_renders(engine):
    hook = WebhookSink()
    hook.start()
    try:
        extra = {"prepay": {**EXTRA["prepay"], "operator_urls": [hook.url()]}}
        world = _world(engine, extra)
        with writing(engine) as conn:
            conn.execute(update(meters).values(protocol="modbus"))
        world.tick(1, kwh="0")
        world.clock.current += timedelta(hours=12)  # past quiet hours
        world.tick(1, kwh="0")
        assert any("operator must decide" in b["message"] for b in hook.bodies)
    finally:
        hook.stop()


def test_an_operator_retries_a_failed_action(engine):
    from headend.prepay import disconnect

    world = _world(engine)
    with writing(engine) as conn:
        conn.execute(update(meters).values(protocol="modbus"))
    world.tick(1, kwh="0")
    assert world.actions()[0].state == "failed"
    with writing(engine) as conn:  # the meter was swapped for a switchable one
        conn.execute(update(meters).values(protocol="dlt645-2007"))
        disconnect.retry(
            conn, "acc1", "meter swapped for a DL/T 645 one", actor="olga", now=world.clock.now()
        )
    world.tick(1, kwh="0")
    assert [a.state for a in world.actions()] == ["failed", "requested"]
    assert [c.action for c in world.commands()] == ["relay_trip"]
