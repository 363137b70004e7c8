"""A simulated day of the meter zoo: the real gateway over RFC 2217, mosquitto, the head-end.

The shipped zoo fleet (every personality, DL/T 645-2007/1997 and Modbus at their own line
settings on one bus) runs on a manual clock; the gateway reads it through the bus's RFC 2217
endpoint and publishes to a private mosquitto, from which the head-end's ingest service stores
everything in SQLite.  The test steps the clock through one day and, at each slot, calls the
daemon's own jobs as its schedules would (hourly energy, instantaneous, events and load profile
sweeps every 2, 4 and 4 hours, events sweeps (and the time sync after them) at half past every
third hour, the daily frozen run at 00:05, settlement values at 01:00; the schedule module's slot
alignment is tested on its own): stepping instead of an accelerated clock keeps the day
deterministic on a loaded machine, where an accelerated clock would skip the slots a slow sweep
overran.  The day crosses a month's end, so settlement values are read on both sides of it.

Compared at the end with the simulator's ground truth (``simulators.truth``): every readable
quantity the schedule asks for arrives at the head-end; no meter_unreachable; what a meter
refuses or ignores arrives as unavailable; the head-end's collection per quantity equals the
truth; a delayed relay ends executed; the strict-clock meter ends within the sync policy.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import insert, select

from gateway.bus.worker import Priority
from gateway.config import parse_config
from gateway.daemon.app import Gateway
from gateway.polling import Group
from headend.analytics.quantities import collection_facts, quantity_collection
from headend.config import DatabaseSettings, IngestSettings, MqttSettings, Settings
from headend.db import make_engine, writing
from headend.db.migrate import upgrade
from headend.db.tables import areas, events, gateways, meters, readings
from headend.ingest.service import IngestService
from protocols.model import EventType
from protocols.quantities import is_known
from protocols.uplink.messages import Command, CommandAction, CommandState
from simulators.config import load_config
from simulators.fleet import start_fleet
from simulators.truth import readable
from taiqu.clock import ManualClock

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore::DeprecationWarning:serial.rfc2217"),
]
ZOO = Path(__file__).parents[2] / "examples" / "zoo-fleet.toml"
ZONE = ZoneInfo("Asia/Shanghai")
UTC = ZoneInfo("UTC")
START = datetime(2026, 3, 31, 23, 30, tzinfo=ZONE)  # the day runs into April: a settlement
GW, AREA = "gw-zoo", "zoo"
SCHEDULED = (Group.ENERGY, Group.INSTANT, Group.EVENTS)
STRICT_DRIFT_MIN_PER_DAY = 3.0  # the strict-clock meter's clock gains this: it needs a sync


def gateway_toml(rows: list[dict[str, Any]], url: str, data: Path, broker: Any) -> dict[str, Any]:
    meters_ = []
    for r in rows:
        meter = {
            "bus": "zoo",
            "protocol": r["protocol"],
            "address": r["address"],
            "id": r["id"],
            "line": r["line"],
        }
        if r["protocol"] == "modbus":
            meter["model"] = r["model"]
        meters_.append(meter)
    return {
        "gateway_id": GW,
        "zone": "Asia/Shanghai",
        "data_dir": str(data),
        "broker": {"host": broker.host, "port": broker.port},
        "signatures": {"required": False},
        "clock_trust": {"source": "trusted"},
        "commands": {"readback_interval_s": 5, "readback_deadline_s": 180},
        "schedule": {"energy_minutes": 120, "instant_minutes": 240, "events_minutes": 60,
                     "backfill_days": 1, "load_profile_minutes": 240,
                     "load_profile_backfill_hours": 4, "settlement_periods": 2},
        # the simulator does not pace the wire: a short gap between frames keeps the day short
        "buses": [{"name": "zoo", "port": url, "baud": 2400, "parity": "E", "retries": 1,
                   "response_timeout_ms": 600, "gap_ms": 1}],
        "meters": meters_,
    }  # fmt: skip


def seed_archive(engine: Any, rows: list[dict[str, Any]]) -> None:
    since = START.astimezone(UTC) - timedelta(days=30)
    with writing(engine) as conn:
        conn.execute(insert(gateways).values(id=GW, valid_from=since))
        conn.execute(insert(areas).values(id=AREA, gateway=GW, valid_from=since))
        conn.execute(
            insert(meters),
            [{"id": r["id"], "point": f"P-{r['id']}", "area": AREA, "bus": "zoo",
              "protocol": r["protocol"], "address": r["address"], "model": r["model"] or None,
              "valid_from": since} for r in rows],
        )  # fmt: skip


async def wait_for(what: str, check: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


@pytest.fixture
async def day(mosquitto: Any, tmp_path: Path) -> Any:
    config = load_config(ZOO)
    config.control = ""
    config.buses[0].listen = "tcp://127.0.0.1:0"
    config.buses[0].rfc2217 = "127.0.0.1:0"
    config.buses[0].pace = False
    for i, m in enumerate(config.meters):
        if m.personality == "strict-clock":
            drift = {"drift_min_per_day": STRICT_DRIFT_MIN_PER_DAY}
            config.meters[i] = m.model_copy(update={"personality_overrides": drift})
    db = DatabaseSettings(url=f"sqlite:///{tmp_path / 'h.db'}", sqlite_synchronous="NORMAL")
    engine = make_engine(db)
    upgrade(engine)
    settings = Settings(
        database=db,
        mqtt=MqttSettings(host=mosquitto.host, port=mosquitto.port, client_id="headend-zoo"),
        ingest=IngestSettings(outbox_interval=0.1),
    )
    clock = ManualClock(START.astimezone(UTC))
    async with start_fleet(config, clock) as fleet:
        rows = fleet.control.meters()
        for r in rows:  # set right when installed; it gains minutes a day from now on
            if r["personality"] == "strict-clock":
                local = clock.now().astimezone(ZONE).replace(tzinfo=None)
                fleet.meter(r["id"]).set_time(clock.now().timestamp(), local)
        seed_archive(engine, rows)
        ingest = IngestService(engine, settings)
        ingest.start()
        doc = gateway_toml(rows, fleet.rfc2217["zoo"], tmp_path / "gw", mosquitto)
        gw = Gateway(parse_config(doc, Path("gw.toml")), clock=clock)
        await gw.start()
        for task in gw._tasks:  # the test runs the jobs itself, slot by slot
            task.cancel()
        try:
            yield fleet, gw, clock, rows, engine
        finally:
            await gw.stop()
            ingest.stop()
            engine.dispose()


async def run_day(gw: Gateway, clock: ManualClock, relay_meter: str) -> CommandState:
    """Step through 24 hourly slots from the first after ``START`` (see the module docstring)."""
    slot = START.replace(minute=0) + timedelta(hours=1)
    outcome: CommandState | None = None
    jobs = [(gw.energy_job, 2), (gw.instant_job, 4), (gw.load_profile_job, 4)]
    for _ in range(24):
        local = slot.astimezone(ZONE)
        target = slot.astimezone(UTC) + timedelta(seconds=1)
        if local.hour == 0:
            target += timedelta(seconds=60)  # the midnight guard of gateway.polling.schedule
        clock.advance((target - clock.now()).total_seconds())
        for job, hours in jobs:
            if local.hour % hours == 0:
                await job()
        if local.hour == 0:
            clock.advance(240)  # 00:05
            assert gw.frozen_jobs is not None
            await gw.frozen_jobs.run("first_sweep", Priority.SCHEDULED)
        if local.hour == 1:
            await gw.settlement_job()
        if local.hour == 10:
            outcome = await trip(gw, clock, relay_meter)
        if local.hour % 3 == 1:  # events (and time sync) at half past: clear of the freezes
            clock.advance((slot + timedelta(minutes=30) - clock.now()).total_seconds())
            await gw.events_job()
        slot += timedelta(hours=1)
    assert outcome is not None
    return outcome


async def trip(gw: Gateway, clock: ManualClock, meter: str) -> CommandState:
    now = clock.now()
    command = Command(
        id="c-zoo-day", gateway=GW, meters=(meter,), action=CommandAction.RELAY_TRIP,
        issued=now, valid_until=now + timedelta(minutes=30), nonce="z" * 16,
    )  # fmt: skip
    return await gw.execute(command)  # the read-back sleeps on the manual clock: time moves


def scheduled(gw: Gateway, meter: str) -> set[str]:
    """The canonical quantities the gateway's sweeps ask of ``meter`` (blocks and members)."""
    driver = gw.poller.meters[meter].driver
    out: set[str] = set()
    for group in SCHEDULED:
        for item in driver.plan(group):
            out.update(driver.quantities(item))
            for single in driver.fallback(item):
                out.update(driver.quantities(single))
    return {q for q in out if is_known(q)}


async def test_a_zoo_day_arrives_at_the_headend_as_the_meters_really_are(day: Any) -> None:
    fleet, gw, clock, rows, engine = day
    relay_meter = next(r["id"] for r in rows if r["personality"] == "delayed-relay")
    started = time.monotonic()
    assert await run_day(gw, clock, relay_meter) is CommandState.EXECUTED
    await wait_for(
        "the head-end to acknowledge everything", lambda: gw.store.first_unacked() is None
    )
    wall = time.monotonic() - started
    # -- what the head-end holds ------------------------------------------------------------------
    t0, t1 = START.astimezone(UTC), clock.now()
    with engine.connect() as conn:
        facts = collection_facts(conn, AREA, t0, t1)
        said = conn.execute(select(events.c.meter, events.c.type)).all()
        kinds = conn.execute(select(readings.c.meter, readings.c.kind, readings.c.flags)).all()
    states, rates = quantity_collection(facts)
    state = {(s.meter, s.quantity): s.state for s in states}
    assert [m for m, t in said if t == EventType.METER_UNREACHABLE.value] == []
    wrong_collected, wrong_unavailable, missing = {}, {}, {}
    for row in rows:
        meter = row["id"]
        truth = readable(fleet, meter)["quantities"]
        asked = scheduled(gw, meter) & set(truth)
        gives = {q for q in asked if truth[q]["outcome"] == "readable"}
        lacks = asked - gives
        got = {q for q in asked if state.get((meter, q)) == "collected"}
        if got != gives:
            wrong_collected[meter] = sorted(got ^ gives)
        said_lacking = {q for q in asked if state.get((meter, q)) == "unavailable"}
        if said_lacking != lacks:
            wrong_unavailable[meter] = sorted(said_lacking ^ lacks)
        nothing = {q for q in asked if state.get((meter, q)) == "missing"}
        if nothing:
            missing[meter] = sorted(nothing)
    # every readable quantity arrived, every unreadable one is said to be so, none is unexplained
    assert (wrong_collected, wrong_unavailable, missing) == ({}, {}, {})
    # the per-quantity figures are the truth's: collected = meters that can give it
    for rate in rates:
        can = sum(
            1 for r in rows
            if rate.quantity in scheduled(gw, r["id"])
            and readable(fleet, r["id"])["quantities"].get(rate.quantity, {}).get("outcome")
            == "readable"
        )  # fmt: skip
        if rate.quantity in {q for r in rows for q in scheduled(gw, r["id"])}:
            assert rate.collected == can, rate
    # -- load profile and settlement values arrived as their kinds -------------------------------
    profile = {m for m, k, f in kinds if k == "interval" and "load_profile" in (f or "")}
    settled = {m for m, k, _ in kinds if k == "settlement"}
    by_personality = {r["personality"]: r["id"] for r in rows}
    assert by_personality["follow-up"] in profile and by_personality["ordinary"] in profile
    assert by_personality["silent-unsupported"] not in profile  # it keeps no load profile
    assert by_personality["dlt645-1997"] in settled and by_personality["ordinary"] in settled
    assert by_personality["dlt645-1997"] not in profile
    health = gw.health.history if gw.health else {}
    assert by_personality["dlt645-1997"] in health["load_profile"]["unsupported"]
    assert by_personality["silent-unsupported"] in health["load_profile"]["refused"]
    # -- the relay and the strict clock ---------------------------------------------------------
    assert fleet.control.relay(relay_meter)["relay"] == "open"
    strict = fleet.meter(by_personality["strict-clock"])
    ts = clock.now().timestamp()
    offset = strict.meter_time(ts) - clock.now().astimezone(ZONE).replace(tzinfo=None)
    assert abs(offset.total_seconds()) < 300  # still within the broadcast window
    per_day: dict[Any, int] = {}
    for _, on, outcome in strict.sync_log:
        per_day[on] = per_day.get(on, 0) + (outcome == "accepted")
    assert per_day and max(per_day.values()) == 1 and sum(per_day.values()) >= 1
    print(f"zoo day: {wall:.1f} s wall")
