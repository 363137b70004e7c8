"""Reminders, notifications and disconnect/reconnect with a manual clock, a real SMTP sink and a
webhook sink (apprise ``mailto://`` and ``json://`` to loopback), through the commands service
and guard rails."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select, update

from headend.commands.dispatcher import Dispatcher
from headend.commands.ingest import on_result
from headend.db import reading, writing
from headend.db.ops_tables import command_dispatches, commands
from headend.db.prepay_tables import notifications, prepay_accounts, prepay_actions
from headend.notify import outbox
from headend.prepay import jobs, payments, store
from headend.prepay.money import MoneySettings
from protocols.uplink import CommandResult, CommandState
from taiqu.clock import ManualClock
from tests.headend.test_prepay_support import (
    SmtpSink,
    WebhookSink,
    add_readings,
    local,
    open_account,
    put_tariff,
    seed_meters,
)

EXTRA = {
    "prepay": {
        "balance_thresholds": ["50", "20"],
        "days_thresholds": [],
        "grace_hours": 24,
        "quiet_hours": ["21:00", "08:00"],
        "notify_retry_seconds": 60,
    }
}


@pytest.fixture
def sinks():
    smtp, hook = SmtpSink(), WebhookSink()
    smtp.controller.start()
    hook.start()
    yield smtp, hook
    smtp.controller.stop()
    hook.stop()


class World:
    """The jobs on a seeded database with a manual clock; readings advance an hour at a time."""

    def __init__(self, engine, clock, extra=EXTRA):
        self.engine, self.clock = engine, clock
        self.jobs = jobs.PrepayJobs(engine, jobs.Context.from_extra(extra), clock)
        self.value = Decimal(0)

    def tick(self, hours=1, kwh="5"):
        """Advance the clock, record a reading at the new time, run one pass of every job."""
        for _ in range(hours):
            self.clock.current += timedelta(hours=1)
            self.value += Decimal(kwh)
            with writing(self.engine) as conn:
                add_readings(conn, "m1", [(self.clock.now(), str(self.value))])
            self.jobs.run_once()

    def account(self):
        with reading(self.engine) as conn:
            return store.account(conn, "acc1")

    def actions(self):
        with reading(self.engine) as conn:
            return conn.execute(select(prepay_actions).order_by(prepay_actions.c.id)).all()

    def commands(self):
        with reading(self.engine) as conn:
            return conn.execute(select(commands).order_by(commands.c.created_at)).all()

    def top_up(self, amount, ref):
        now = self.clock.now()
        ctx = self.jobs.ctx
        with writing(self.engine) as conn:  # what the API's top-up does
            payments.top_up(
                conn,
                "acc1",
                Decimal(amount),
                ref,
                channel="bank",
                paid_at=now,
                money=MoneySettings(),
                actor="olga",
                now=now,
            )
            if jobs.settle(conn, "acc1", now, ctx) == "reconnect":
                from headend.prepay import disconnect

                disconnect.step(
                    conn,
                    disconnect.open_action(conn, "acc1"),
                    now,
                    guards=ctx.guards,
                    commands_settings=ctx.commands,
                    settings=ctx.settings,
                )


def execute_commands(world, sent):
    """Dispatch approved commands (publish captured) and report each as executed."""
    d = Dispatcher(
        world.engine, lambda t, p: sent.append((t, p)), world.clock, world.jobs.ctx.guards
    )
    d.run_once()
    with writing(world.engine) as conn:
        for row in world.commands():
            if row.state != "sent":
                continue
            dispatches = conn.execute(
                select(command_dispatches.c.id).where(command_dispatches.c.command_id == row.id)
            ).scalars()
            for dispatch in dispatches:
                result = CommandResult(
                    id=dispatch, gw="gw1", state=CommandState.EXECUTED, at=world.clock.now()
                )
                on_result(conn, "gw1", result)


def test_a_customer_burns_through_the_balance(engine, sinks):
    smtp, hook = sinks
    seed_meters(engine, ["m1"])
    put_tariff(engine, "res", {"kind": "flat", "price": "1.00"})
    start = local(2026, 3, 9, 9)  # Monday 09:00 Shanghai
    open_account(
        engine,
        "acc1",
        ["P-m1"],
        at=start,
        language="en",
        contacts=[smtp.url("customer@example.test"), hook.url()],
    )
    clock = ManualClock(start)
    world = World(engine, clock)
    with writing(engine) as conn:
        add_readings(conn, "m1", [(start, "0")])
    world.top_up("100.00", "BANK-1")
    # 5 kWh an hour at 1.00: 50 left at 19:00 Monday, 20 at 01:00 Tuesday (quiet hours until
    # 08:00), 0 at 05:00 Tuesday (final notice, held until 08:00; disconnect planned at
    # 08:00 + 24 h grace = Wednesday 08:00, inside the disconnect window).
    world.tick(10)  # → 19:00
    assert len(hook.bodies) == 1 and "50.00 CNY" in hook.bodies[0]["message"]
    world.tick(6)  # → 01:00 Tuesday: the 20 notice waits for the end of quiet hours
    assert len(hook.bodies) == 1
    world.tick(4)  # → 05:00: balance 0, final notice queued, also held
    assert len(hook.bodies) == 1 and len(smtp.messages) == 1
    acct = world.account()
    assert acct.stage == "final" and acct.disconnect_at == local(2026, 3, 11, 8)
    world.tick(3, kwh="0")  # → 08:00: both held notices go out, once each
    texts = [b["message"] for b in hook.bodies]
    assert len(texts) == 3 and "20.00 CNY" in texts[1]
    assert "2026-03-11 08:00" in texts[2] and "disconnected" in texts[2]
    assert len(smtp.messages) == 3 and "2026-03-11 08:00" in smtp.bodies()[2]
    world.tick(23, kwh="0")  # → Wednesday 07:00: the grace period is not over
    assert world.actions() == [] and world.commands() == []
    world.tick(1, kwh="0")  # → 08:00: the disconnect goes through the commands service
    [cmd] = world.commands()
    assert cmd.action == "relay_trip" and cmd.created_by == "prepay" and cmd.state == "approved"
    sent = []
    execute_commands(world, sent)
    assert len(sent) == 1 and sent[0][0] == "taiqu/v1/gw1/down/cmd"
    world.tick(1, kwh="0")
    acct = world.account()
    assert acct.supply == "off" and acct.stage == "off"
    assert "disconnected at" in hook.bodies[-1]["message"]
    # A top-up restores supply: a reconnect command at once, and the customer is told.
    world.top_up("80.00", "BANK-2")
    cmds = world.commands()
    assert [c.action for c in cmds] == ["relay_trip", "relay_close_allowed"]
    execute_commands(world, sent)
    world.tick(1, kwh="0")
    assert world.account().supply == "on"
    assert "Supply is being restored" in hook.bodies[-1]["message"]
    # Every threshold exactly once in both sinks; nothing twice.
    titles = [b["title"] for b in hook.bodies]
    assert titles.count("Low electricity balance") == 2
    assert titles.count("Final notice before disconnection") == 1
    assert len(smtp.messages) == len(hook.bodies)
    with reading(engine) as conn:
        rows = outbox.of_account(conn, "acc1")
    assert {r["state"] for r in rows} == {"sent"} and all(
        "@" not in r["target"] or "?" in r["target"] for r in rows
    )


def _final(world, at):
    with writing(world.engine) as conn:
        conn.execute(update(prepay_accounts).values(stage="final", disconnect_at=at))


def _owing_world(engine, *, keep_power=False, start):
    seed_meters(engine, ["m1"], keep_power=frozenset({"m1"}) if keep_power else frozenset())
    put_tariff(engine, "res", {"kind": "flat", "price": "1.00"})
    open_account(engine, "acc1", ["P-m1"], at=start - timedelta(hours=2))
    world = World(engine, ManualClock(start - timedelta(hours=1)))
    with writing(engine) as conn:
        add_readings(conn, "m1", [(start - timedelta(hours=2), "0")])
    world.tick(1)  # charged −5: owes
    _final(world, start)
    return world


def test_no_disconnect_at_night_then_at_the_next_allowed_time(engine):
    world = _owing_world(engine, start=local(2026, 3, 10, 22))  # Tuesday 22:00
    world.tick(1, kwh="0")  # 23:00: refused by the window, retried at 08:00
    [action] = world.actions()
    assert action.rule == "window.hours" and action.next_try == local(2026, 3, 11, 8)
    assert world.commands() == []
    world.tick(8, kwh="0")  # 07:00 Wednesday: still waiting, no new attempt
    assert world.actions()[0].attempts == 1
    world.tick(1, kwh="0")  # 08:00
    assert [c.action for c in world.commands()] == ["relay_trip"]
    assert world.actions()[0].state == "requested"


def test_no_disconnect_on_a_public_holiday(engine):
    world = _owing_world(engine, start=local(2026, 10, 1, 9))  # National Day
    world.tick(1, kwh="0")
    [action] = world.actions()
    assert action.rule == "window.holiday"
    assert action.next_try == local(2026, 10, 8, 8)  # 1–7 October are holidays in 2026
    world.clock.current = local(2026, 10, 8, 7)
    world.tick(1, kwh="0")
    assert [c.action for c in world.commands()] == ["relay_trip"]


def test_never_a_disconnect_for_a_keep_power_account(engine):
    world = _owing_world(engine, keep_power=True, start=local(2026, 3, 10, 9))
    world.tick(1, kwh="0")
    [action] = world.actions()
    assert action.rule == "keep_power" and action.state == "waiting"
    world.clock.current = action.next_try - timedelta(hours=1)
    world.tick(1, kwh="0")
    assert world.commands() == [] and world.actions()[0].attempts == 2


def test_no_disconnect_on_stale_data_until_a_fresh_reading(engine):
    world = _owing_world(engine, start=local(2026, 3, 10, 9))
    world.clock.current += timedelta(hours=7)  # no reading for 7 h
    world.jobs.run_once()
    [action] = world.actions()
    assert action.rule == "stale_data" and world.commands() == []
    world.clock.current = action.next_try - timedelta(hours=1)
    world.tick(1, kwh="0")  # a fresh reading, the retry is due
    assert [c.action for c in world.commands()] == ["relay_trip"]


def test_failed_deliveries_are_retried_and_logged(engine, sinks):
    _smtp, hook = sinks
    seed_meters(engine, ["m1"])
    put_tariff(engine, "res", {"kind": "flat", "price": "1.00"})
    start = local(2026, 3, 9, 9)
    open_account(engine, "acc1", ["P-m1"], at=start, contacts=[hook.url()])
    world = World(engine, ManualClock(start))
    with writing(engine) as conn:
        add_readings(conn, "m1", [(start, "0")])
    world.top_up("52.00", "B1")
    hook.fail = 1
    world.tick(1)  # 47 left: notice for 50; the webhook answers 500 once
    with reading(engine) as conn:
        [row] = conn.execute(select(notifications)).all()
    assert row.state == "pending" and row.attempts == 1 and "500" in (row.last_error or "")
    assert row.language == "zh" and hook.bodies == []
    world.tick(1, kwh="0")  # the back-off (60 s) has passed: sent
    with reading(engine) as conn:
        [row] = conn.execute(select(notifications)).all()
    assert row.state == "sent" and row.attempts == 2
    assert "户号 acc1" in hook.bodies[0]["message"]


def report(world, state, meter="m1"):
    """The gateway's word on every sent or armed dispatch, for one meter."""
    with writing(world.engine) as conn:
        for dispatch in conn.execute(
            select(command_dispatches.c.id).where(
                command_dispatches.c.state.in_(["sent", "received", "armed"])
            )
        ).scalars():
            on_result(
                conn,
                "gw1",
                CommandResult(
                    id=dispatch, gw="gw1", state=state, at=world.clock.now(), meter=meter
                ),
            )


def _armed_world(engine, hook):
    extra = {"prepay": {**EXTRA["prepay"], "operator_urls": [hook.url()]}}
    start = local(2026, 3, 10, 9)
    seed_meters(engine, ["m1"])
    put_tariff(engine, "res", {"kind": "flat", "price": "1.00"})
    open_account(engine, "acc1", ["P-m1"], at=start - timedelta(hours=2))
    world = World(engine, ManualClock(start - timedelta(hours=1)), extra)
    with writing(engine) as conn:
        add_readings(conn, "m1", [(start - timedelta(hours=2), "0")])
    world.tick(1)  # charged −5: owes
    with writing(engine) as conn:  # as after a prepayment disconnect
        conn.execute(update(prepay_accounts).values(stage="off", supply="off"))
    world.top_up("80.00", "BANK-1")
    [cmd] = world.commands()
    assert cmd.action == "relay_close_allowed" and world.actions()[0].state == "requested"
    Dispatcher(world.engine, lambda t, p: None, world.clock, world.jobs.ctx.guards).run_once()
    report(world, CommandState.ARMED)
    assert world.commands()[0].state == "armed"
    return world


def test_an_armed_reconnect_is_done_for_the_account_until_the_button(engine, sinks):
    _smtp, hook = sinks
    world = _armed_world(engine, hook)
    world.tick(1, kwh="0")
    [action] = world.actions()
    assert action.state == "armed" and action.history[-1]["outcome"] == "armed"
    assert world.account().supply == "armed"
    world.top_up("10.00", "BANK-2")  # paying again while armed: no second reconnect
    world.tick(5, kwh="0")  # no retry, no new command, no operator alert
    assert len(world.commands()) == 1 and len(world.actions()) == 1
    assert world.actions()[0].attempts == 1 and world.account().supply == "armed"
    with reading(engine) as conn:
        kinds = [r["template"] for r in outbox.of_account(conn, "acc1")]
    assert "disconnect_refused" not in kinds
    report(world, CommandState.EXECUTED)  # the customer pressed the button
    world.tick(1, kwh="0")
    [action] = world.actions()
    assert action.state == "done" and world.account().supply == "on"
    assert len(world.commands()) == 1


def test_a_superseded_arm_reconnects_again(engine, sinks):
    _smtp, hook = sinks
    world = _armed_world(engine, hook)
    world.tick(1, kwh="0")
    assert world.account().supply == "armed"
    report(world, CommandState.FAILED)  # a later relay command superseded the arm
    world.tick(1, kwh="0")
    [action] = world.actions()
    assert action.state == "waiting" and action.rule == "command_failed"
    assert world.account().supply == "off"
    world.clock.current = action.next_try - timedelta(hours=1)
    world.tick(1, kwh="0")
    assert [c.action for c in world.commands()] == ["relay_close_allowed"] * 2
