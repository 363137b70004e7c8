"""Case 1 of issue 18: a payment while a disconnect is in flight, and ``supply`` following the
relay state the meter reports (command read-back, polled relay state), not the head-end's intent.

Every scenario runs the real jobs, the commands service and the dispatcher on SQLite and
PostgreSQL; only the gateway's word (``up/result``) is written by the test, as the ingest would.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from headend.commands.dispatcher import Dispatcher
from headend.db import reading, writing
from headend.db.ops_tables import commands
from headend.prepay import store
from protocols.quantities import RELAY_STATE
from protocols.uplink import CommandState
from tests.headend.test_prepay_support import add_readings, local
from tests.headend.test_reminder_disconnect import _owing_world, report


def _dispatch(world):
    Dispatcher(world.engine, lambda t, p: None, world.clock, world.jobs.ctx.guards).run_once()


def _balance(world):
    with reading(world.engine) as conn:
        return store.balance_micro(conn, "acc1")


def test_a_payment_follows_the_disconnect_in_flight_and_reconnects_after_it(engine):
    world = _owing_world(engine, start=local(2026, 3, 10, 9))  # Tuesday 09:00, owes 5.00
    world.tick(1, kwh="0")
    [cmd] = world.commands()
    assert cmd.action == "relay_trip"
    _dispatch(world)  # the trip is on its way to the meter: it can no longer be cancelled
    world.top_up("50.00", "BANK-9")  # balance +45.00 while the trip is in flight
    assert _balance(world) == 45_000_000
    [action] = world.actions()
    assert action.state == "requested"  # followed, not dropped blind
    assert world.commands()[0].state == "sent"
    report(world, CommandState.EXECUTED)  # the relay trips anyway (read-back: open)
    world.tick(1, kwh="0")
    acct = world.account()
    assert acct.supply == "off"  # what the meter reported, not what the head-end wished
    actions = world.actions()
    assert [(a.action, a.state) for a in actions] == [
        ("disconnect", "done"),
        ("reconnect", "requested"),
    ]
    assert [c.action for c in world.commands()] == ["relay_trip", "relay_close_allowed"]
    _dispatch(world)
    report(world, CommandState.EXECUTED)  # the customer pressed the button: closed
    world.tick(1, kwh="0")
    assert world.account().supply == "on"
    assert world.actions()[-1].state == "done"


def test_a_payment_before_the_disconnect_is_sent_cancels_it(engine):
    world = _owing_world(engine, start=local(2026, 3, 10, 9))
    world.tick(1, kwh="0")
    world.top_up("50.00", "BANK-9")
    [action] = world.actions()
    assert action.state == "dropped"
    [cmd] = world.commands()
    assert cmd.state == "cancelled"
    _dispatch(world)
    world.tick(1, kwh="0")
    assert world.account().supply == "on" and len(world.commands()) == 1


def test_a_trip_that_failed_on_the_meter_leaves_supply_on(engine):
    world = _owing_world(engine, start=local(2026, 3, 10, 9))
    world.tick(1, kwh="0")
    _dispatch(world)
    world.top_up("50.00", "BANK-9")
    report(world, CommandState.FAILED)  # read-back said closed: the relay did not trip
    world.tick(1, kwh="0")
    assert world.account().supply == "on"
    assert [a.state for a in world.actions()] == ["dropped"]
    assert len(world.commands()) == 1  # paid: no new trip, and no reconnect needed


def test_supply_follows_the_polled_relay_state(engine):
    world = _owing_world(engine, start=local(2026, 3, 10, 9))
    world.tick(1, kwh="0")
    _dispatch(world)
    report(world, CommandState.EXECUTED)
    world.tick(1, kwh="0")
    assert world.account().supply == "off"
    # The customer later closes the relay at the meter (a close-allowed left from before, a
    # technician): the polled relay state says closed, and the account says so too.
    with writing(engine) as conn:
        add_readings(
            conn, "m1", [(world.clock.now() + timedelta(minutes=5), "closed")], quantity=RELAY_STATE
        )
    world.tick(1, kwh="0")
    assert world.account().supply == "on"


def test_an_operators_manual_trip_is_reported_but_never_reconnected_by_prepayment(engine):
    world = _owing_world(engine, start=local(2026, 3, 10, 9))
    world.top_up("100.00", "BANK-1")  # paid up: nothing for prepayment to do
    with writing(engine) as conn:
        add_readings(
            conn, "m1", [(world.clock.now() + timedelta(minutes=5), "open")], quantity=RELAY_STATE
        )
    world.tick(2, kwh="0")
    assert world.account().supply == "off"
    with reading(engine) as conn:
        assert conn.execute(select(commands)).all() == []


def test_supply_follows_relay_change_events(engine):
    import json

    from headend.db.tables import events

    world = _owing_world(engine, start=local(2026, 3, 10, 9))
    world.top_up("100.00", "BANK-1")

    def event(minutes, to):
        t = world.clock.now() + timedelta(minutes=minutes)
        with writing(engine) as conn:
            conn.execute(
                events.insert().values(
                    key=f"gw1:m1:relay:{t.isoformat()}", gateway="gw1", meter="m1",
                    type="relay_change", time=t, start=t, detected=t, received=t,
                    details=json.dumps({"from": "closed" if to == "open" else "open", "to": to}),
                )
            )  # fmt: skip

    event(5, "open")  # e.g. tripped at the meter by its own overload protection
    event(10, "closed")
    event(20, "open")
    world.tick(1, kwh="0")
    assert world.account().supply == "off"  # the newest event wins
    event(70, "closed")
    world.tick(1, kwh="0")
    assert world.account().supply == "on"
