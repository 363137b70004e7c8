"""Relay timing and clock rules of the personalities, over the wire with the master codec."""

from __future__ import annotations

from datetime import datetime, timedelta

from protocols.dlt645 import (
    AbnormalReply,
    BroadcastTimeSync,
    ControlAck,
    ControlAction,
    ReadData,
    ReadReply,
    RemoteControl,
)
from simulators.meter import Relay

from .conftest import BusHarness
from .zoo import START, A, ask, zoo

SW3 = 0x04000503
FAR = datetime(2030, 1, 1)


async def status3(h: BusHarness) -> set[str]:
    reply, _ = await ask(h, ReadData(A, SW3))
    assert isinstance(reply, ReadReply)
    return set(reply.values["status.word3"].flags)


async def test_trip_shows_as_commanded_at_once_and_opens_after_the_delay():
    fleet, clock = zoo("delayed-relay")
    meter = fleet.meters[A]
    async with BusHarness(fleet.buses["bus1"]) as h:
        ack, _ = await ask(h, RemoteControl(A, ControlAction.TRIP, valid_until=FAR))
        assert isinstance(ack, ControlAck)
        flags = await status3(h)
        assert "relay_command_trip" in flags and "relay_open" not in flags
        assert fleet.control.relay(A)["trip_pending"]
        clock.advance(29)
        assert "relay_open" not in await status3(h)
        clock.advance(2)
        flags = await status3(h)
        assert {"relay_open", "relay_command_trip"} <= flags
    assert meter.relay(clock.now().timestamp()) is Relay.OPEN
    t = clock.now().timestamp()
    assert meter.true_kwh(t - 1, t) == (0.0, 0.0, 0.0, 0.0)  # no supply once open


async def test_high_current_defers_the_trip_until_the_deferral_runs_out():
    overrides = {"trip_defer_above_a": 0.01, "trip_defer_max_s": 120, "trip_defer_step_s": 60}
    fleet, clock = zoo("delayed-relay", overrides=overrides, profile="flat", mean_kw=2.0)
    async with BusHarness(fleet.buses["bus1"]) as h:
        await ask(h, RemoteControl(A, ControlAction.TRIP, valid_until=FAR))
        clock.advance(30 + 119)
        assert "relay_open" not in await status3(h)
        clock.advance(2)
        assert "relay_open" in await status3(h)


async def test_a_close_before_the_relay_opened_cancels_the_pending_trip():
    fleet, clock = zoo("delayed-relay")
    async with BusHarness(fleet.buses["bus1"]) as h:
        await ask(h, RemoteControl(A, ControlAction.TRIP, valid_until=FAR))
        clock.advance(10)
        ack, _ = await ask(h, RemoteControl(A, ControlAction.CLOSE_DIRECT, valid_until=FAR))
        assert isinstance(ack, ControlAck)
        clock.advance(60)
        assert not {"relay_open", "relay_command_trip"} & await status3(h)
    assert fleet.control.events(A)["relay"] == []


async def test_ordinary_relay_trips_at_once():
    fleet, _ = zoo("ordinary")
    async with BusHarness(fleet.buses["bus1"]) as h:
        await ask(h, RemoteControl(A, ControlAction.TRIP, valid_until=FAR))
        assert {"relay_open", "relay_command_trip"} <= await status3(h)


async def sync(h: BusHarness, when: datetime) -> None:
    reply, raw = await ask(h, BroadcastTimeSync(when))
    assert reply is None and raw == b""  # a broadcast is never answered


async def test_strict_clock_accepts_one_sync_a_day_within_five_minutes_away_from_midnight():
    fleet, clock = zoo("strict-clock", clock_offset_s=-120)  # the meter runs 2 min late
    meter = fleet.meters[A]
    true_local = START.replace(tzinfo=None)
    async with BusHarness(fleet.buses["bus1"]) as h:
        await sync(h, true_local + timedelta(minutes=7))  # 9 min from its clock: too far
        await sync(h, true_local)  # 2 min: accepted
        shown = meter.meter_time(clock.now().timestamp())
        assert abs((shown - true_local).total_seconds()) < 1
        await sync(h, true_local + timedelta(seconds=30))  # second one the same day
    outcomes = [s["outcome"] for s in fleet.control.syncs(A)["syncs"]]
    assert outcomes == ["outside_window", "accepted", "already_synced_today"]


async def test_strict_clock_refuses_a_sync_near_midnight_even_on_a_new_day():
    near = (START + timedelta(hours=12)).replace(hour=0, minute=2, second=0)
    fleet, clock = zoo("strict-clock", start=near, clock_offset_s=-60)
    async with BusHarness(fleet.buses["bus1"]) as h:
        await sync(h, near.replace(tzinfo=None))
        clock.advance(3600)
        await sync(h, (near + timedelta(hours=1)).replace(tzinfo=None))
    outcomes = [s["outcome"] for s in fleet.control.syncs(A)["syncs"]]
    assert outcomes == ["near_midnight", "accepted"]


async def test_lenient_clock_takes_any_sync():
    fleet, clock = zoo("ordinary")
    async with BusHarness(fleet.buses["bus1"]) as h:
        far = START.replace(tzinfo=None) + timedelta(hours=3)
        await sync(h, far)
        await sync(h, far)
    shown = fleet.meters[A].meter_time(clock.now().timestamp())
    assert abs((shown - far).total_seconds()) < 1


async def test_drifting_clock_gains_two_minutes_a_day():
    fleet, clock = zoo("drifting-clock")
    async with BusHarness(fleet.buses["bus1"]) as h:
        first, _ = await ask(h, ReadData(A, 0x04000102))
        clock.advance(86400)
        later, _ = await ask(h, ReadData(A, 0x04000102))
    t0 = datetime.combine(START.date(), first.values["meter.time"])
    t1 = datetime.combine(START.date(), later.values["meter.time"])
    assert timedelta(seconds=115) <= t1 - t0 <= timedelta(seconds=125)


async def test_the_combined_date_time_identifier_or_its_refusal():
    fleet, clock = zoo("ordinary")
    older, _ = zoo("no-blocks")
    async with BusHarness(fleet.buses["bus1"]) as h:
        both, _ = await ask(h, ReadData(A, 0x0400010C))
    shown = fleet.meters[A].meter_time(clock.now().timestamp())
    assert isinstance(both, ReadReply)
    assert abs((both.values["meter.datetime"].local - shown).total_seconds()) < 1
    async with BusHarness(older.buses["bus1"]) as h:
        refused, _ = await ask(h, ReadData(A, 0x0400010C))
        date, _ = await ask(h, ReadData(A, 0x04000101))
    assert isinstance(refused, AbnormalReply) and isinstance(date, ReadReply)


def test_a_deferred_trip_does_not_decide_a_prepay_trip_before_a_top_up():
    overrides = {"trip_defer_above_a": 0.01, "trip_defer_max_s": 1800}
    row = {"overrides": overrides, "profile": "flat", "mean_kw": 2.0}
    probe, clock = zoo("delayed-relay", prepay={"balance": 1e6}, **row)
    t0 = clock.now().timestamp()
    spent = 1e6 - probe.meters[A].balance(t0)
    fleet, clock = zoo("delayed-relay", prepay={"balance": spent + 0.2}, **row)  # ~6 min left
    meter = fleet.meters[A]
    assert fleet.control.relay(A, "trip")["trip_pending"]  # deferred: 2 kW is above 0.01 A
    clock.advance(60)
    fleet.control.top_up(A, 100.0)  # the customer pays before the credit runs out
    assert meter.relay(t0 + 61).value == "closed"
    assert meter.relay(t0 + 900).value == "closed"  # no prepay trip: the top-up came in time
    assert meter.relay(t0 + 30 + 1800 + 1).value == "open"  # the remote trip, deferred to its end
