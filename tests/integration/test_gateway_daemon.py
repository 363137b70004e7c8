"""The whole daemon (Gateway II wiring) against simulated meters and a real mosquitto.

Simulators run in-process (``start_fleet``) on one TCP bus (``socket://``) and one pty bus, with
pacing off; the gateway runs in-process on a shared clock that the test can jump (an accelerated
clock, so minutes and days pass at once).  A fake head-end on the broker acknowledges batches,
collects events and command results, and publishes commands on ``down/cmd``.

The daemon's own jobs (``energy_job``, ``events_job``, ``frozen_jobs``) are called directly, so
the test decides when a sweep happens; the schedules are running too, but their next slot lies
beyond the test.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from gateway.clock.trust import ClockTrust
from gateway.config import parse_config
from gateway.daemon.app import Gateway
from protocols.uplink import (
    Ack,
    Batch,
    Command,
    CommandAction,
    CommandResult,
    EventRecord,
    ReadingRecord,
    Status,
    decode_message,
    encode,
)
from protocols.uplink.topics import HEADEND_UP, Topics

pytestmark = pytest.mark.integration
simulators = pytest.importorskip("simulators.fleet")
from simulators.config import parse_config as parse_fleet  # noqa: E402

GW = "gw-it2"
ZONE = ZoneInfo("Asia/Shanghai")
BUS1 = ("202611240001", "202611240002", "202611240003")  # TCP
BUS2 = ("202611250001", "202611250002")  # pty, plus a Modbus SDM120 (unit 7)


class JumpClock:
    """An accelerated clock shared by fleet and gateway that the test can move forward at once."""

    def __init__(self, start: datetime, factor: float = 1.0) -> None:
        self.start, self.factor = start, factor
        self.t0 = time.monotonic()
        self.offset = 0.0

    def now(self) -> datetime:
        elapsed = self.offset + (time.monotonic() - self.t0) * self.factor
        return (self.start + timedelta(seconds=elapsed)).astimezone(UTC)

    def wall_seconds(self, seconds: float) -> float:
        return seconds / self.factor

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, self.wall_seconds(seconds)))

    def jump(self, seconds: float) -> None:
        self.offset += seconds


class HeadEnd:
    """Acknowledges like the head-end; keeps records, results and statuses; sends commands."""

    def __init__(self, port: int) -> None:
        self.lock = threading.Lock()
        self.readings: list[ReadingRecord] = []
        self.events: list[EventRecord] = []
        self.results: list[CommandResult] = []
        self.statuses: list[Status] = []
        self.subscribed = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"headend-{uuid.uuid4().hex[:8]}",
            clean_session=False,  # the broker keeps our subscription across its restarts
        )
        self.client.reconnect_delay_set(1, 1)
        self.client.on_connect = lambda c, *_: c.subscribe(HEADEND_UP, qos=1)
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_message = self._message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self.subscribed.wait(10), "head-end did not subscribe"

    def _message(self, client: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        gateway, _kind, message = decode_message(msg.topic, bytes(msg.payload))
        with self.lock:
            if isinstance(message, CommandResult):
                self.results.append(message)
            elif isinstance(message, Status):
                self.statuses.append(message)
            elif isinstance(message, Batch):
                for record in message.records:
                    if isinstance(record, ReadingRecord):
                        self.readings.append(record)
                    elif isinstance(record, EventRecord):
                        self.events.append(record)
        if isinstance(message, Batch):
            ack = Ack(epoch=message.epoch, upto=message.last_seq)
            client.publish(Topics(gateway).ack, encode(ack), qos=1)

    def send(self, command: Command) -> None:
        self.client.publish(Topics(GW).cmd, encode(command), qos=1).wait_for_publish(5)

    def steps(self, command_id: str) -> list[tuple[str, str | None, str | None]]:
        """(state, meter, reason) of every result of a command, in arrival order."""
        with self.lock:
            return [(r.state.value, r.meter, r.reason) for r in self.results if r.id == command_id]

    def events_of(self, meter: str, kind: str) -> list[EventRecord]:
        with self.lock:
            return [e for e in self.events if e.meter == meter and e.type.value == kind]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


async def until(predicate: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    """Wait for ``predicate`` with a deadline (never a bare sleep)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def fleet_config() -> Any:
    return parse_fleet(
        {
            "areas": [{"name": "a1", "gateway_id": GW}],
            "buses": [
                {"name": "bus1", "area": "a1", "baud": 9600, "pace": False},
                {"name": "bus2", "area": "a1", "listen": "pty", "baud": 9600, "pace": False},
            ],
            "meters": [
                {"bus": "bus1", "protocol": "dlt645-2007", "address": BUS1[0], "count": 3},
                {"bus": "bus2", "protocol": "dlt645-2007", "address": BUS2[0], "count": 2},
                {"bus": "bus2", "protocol": "modbus", "model": "SDM120", "address": "7"},
            ],
        },
        "daemon test fleet",
    )


def gateway_doc(fleet: Any, broker: Any, data_dir: Path, **schedule: Any) -> dict[str, Any]:
    meters: list[dict[str, Any]] = []
    for ident, meter in fleet.meters.items():
        row: dict[str, Any] = {"id": ident, "bus": fleet.meter_bus[ident]}
        if meter.spec.protocol == "modbus":
            row |= {"protocol": "modbus", "address": ident.split(":")[-1], "model": "SDM120"}
        else:
            row |= {"protocol": meter.spec.protocol, "address": meter.address}
        meters.append(row)
    return {
        "gateway_id": GW,
        "zone": "Asia/Shanghai",
        "data_dir": str(data_dir),
        "broker": {"host": broker.host, "port": broker.port},
        "schedule": {"energy_minutes": 15, "events_minutes": 5, "backfill_days": 0} | schedule,
        "commands": {"reconnect_window_s": 0},
        "signatures": {"required": False},  # a test bench (test_gateway_signed_commands.py)
        "buses": [
            {"name": name, "port": url, "baud": 9600, "response_timeout_ms": 300}
            for name, url in fleet.endpoints.items()
        ],
        "meters": meters,
    }


class Rig:
    """Fleet + gateway + head-end on one jumpable clock; ``trusted`` switches clock trust."""

    def __init__(self, fleet: Any, gateway: Gateway, headend: HeadEnd, clock: JumpClock) -> None:
        self.fleet, self.gateway, self.headend, self.clock = fleet, gateway, headend, clock
        self.trusted = True

    def command(
        self,
        action: CommandAction,
        meters: Iterable[str],
        *,
        ident: str | None = None,
        valid_s: float = 600,
    ) -> Command:
        now = self.clock.now()
        return Command(
            id=ident or f"cmd-{uuid.uuid4().hex[:10]}",
            gateway=GW,
            meters=tuple(meters),
            action=action,
            issued=now,
            valid_until=now + timedelta(seconds=valid_s),
            nonce=uuid.uuid4().hex[:16],
        )

    async def drained(self, timeout: float = 20.0) -> None:
        store = self.gateway.store
        await until(lambda: store.first_unacked() is None, "every record acknowledged", timeout)

    def skew_s(self, meter: str) -> float:
        """Simulated meter clock − true time, in seconds."""
        ts = self.clock.now().timestamp()
        shown = self.fleet.meters[meter].meter_time(ts)
        return float(
            (shown - datetime.fromtimestamp(ts, ZONE).replace(tzinfo=None)).total_seconds()
        )


async def start_rig(mosquitto: Any, tmp: Path, start: datetime, **schedule: Any) -> Any:
    clock = JumpClock(start)
    fleet_cm = simulators.start_fleet(fleet_config(), clock=clock)
    fleet = await fleet_cm.__aenter__()
    headend = HeadEnd(mosquitto.port)
    cfg = parse_config(gateway_doc(fleet, mosquitto, tmp / "gw", **schedule), Path("gw.toml"))
    holder: list[Rig] = []
    trust = ClockTrust([lambda: holder[0].trusted], cache_s=0)
    gateway = Gateway(cfg, config_path=tmp / "gw.toml", clock=clock, clock_trust=trust)
    rig = Rig(fleet, gateway, headend, clock)
    holder.append(rig)
    await gateway.start()
    await gateway.uplink.wait_connected(10)

    async def close() -> None:
        await gateway.stop()
        headend.close()
        await fleet_cm.__aexit__(None, None, None)

    return rig, close


@pytest.fixture
async def rig(mosquitto: Any, tmp_path: Any) -> Any:
    rig, close = await start_rig(mosquitto, tmp_path, datetime(2026, 11, 24, 10, 1, tzinfo=ZONE))
    try:
        yield rig
    finally:
        await close()


# -- events ------------------------------------------------------------------------------------


async def test_cover_open_and_power_down_between_polls_are_reported_once_with_their_times(
    rig: Any,
) -> None:
    fleet, gw, he, clock = rig.fleet, rig.gateway, rig.headend, rig.clock
    cover, power, still_open = BUS1[0], BUS2[0], BUS1[1]
    await gw.events_job()  # baseline: history is not reported
    opened = clock.now().replace(microsecond=0)
    fleet.control.cover(cover, "meter", open=True, at=opened.isoformat())
    fleet.control.power(power, on=False, at=opened.isoformat())
    fleet.control.cover(still_open, "meter", open=True, at=opened.isoformat())
    closed = opened + timedelta(seconds=90)
    fleet.control.cover(cover, "meter", open=False, at=closed.isoformat())
    fleet.control.power(power, on=True, at=(opened + timedelta(seconds=120)).isoformat())
    clock.jump(180)  # the next sweep comes after the cover closed and the power came back
    await gw.events_job()
    await gw.events_job()  # nothing new: nothing reported twice
    await rig.drained()

    [event] = he.events_of(cover, "meter_cover_open")
    assert event.details["phase"] == "complete"
    assert (event.start, event.end) == (opened, closed)
    [down] = he.events_of(power, "power_down")
    assert down.start == opened and down.end == opened + timedelta(seconds=120)
    [start] = he.events_of(still_open, "meter_cover_open")
    assert start.details["phase"] == "start" and start.end is None

    shut = clock.now().replace(microsecond=0)
    fleet.control.cover(still_open, "meter", open=False, at=shut.isoformat())
    clock.jump(60)
    await gw.events_job()
    await rig.drained()
    _first, end = he.events_of(still_open, "meter_cover_open")
    assert end.details["phase"] == "end" and (end.start, end.end) == (opened, shut)
    assert len(he.events_of(cover, "meter_cover_open")) == 1
    assert len(he.events_of(power, "power_down")) == 1


# -- commands ----------------------------------------------------------------------------------


async def test_relay_commands_end_with_read_back_armed_expired_and_duplicate(rig: Any) -> None:
    fleet, gw, he = rig.fleet, rig.gateway, rig.headend
    meter = BUS1[2]
    trip = rig.command(CommandAction.RELAY_TRIP, [meter])
    he.send(trip)
    await until(lambda: ("executed", None, None) in he.steps(trip.id), "trip executed")
    assert [s for s, *_ in he.steps(trip.id)] == ["received", "executing", "executed", "executed"]
    assert fleet.control.relay(meter)["relay"] == "open"
    per_meter = next(r for r in he.results if r.id == trip.id and r.meter == meter)
    assert per_meter.detail["relay"] == "open" and per_meter.detail["status_word3"] & 0x10

    close = rig.command(CommandAction.RELAY_CLOSE_ALLOWED, [meter])
    he.send(close)
    await until(lambda: ("armed", meter, "awaiting the customer's button") in he.steps(close.id),
                "close allowed armed")  # fmt: skip
    await gw.events_job()  # the relay is still open: the command stays armed
    assert fleet.control.relay(meter)["relay"] == "armed"
    assert [s for s, m, _ in he.steps(close.id) if m == meter] == ["armed"]
    fleet.control.press_button(meter)
    await gw.events_job()  # the sweep sees the relay closed
    await until(lambda: ("executed", meter, None) in he.steps(close.id), "armed → executed")
    done = [r for r in he.results if r.id == close.id and r.meter == meter][-1]
    assert done.detail == {"relay": "closed", "by": "customer"}

    he.send(trip)  # delivered again: never executed twice
    await until(lambda: ("refused", None, "duplicate") in he.steps(trip.id), "duplicate refused")
    assert fleet.control.relay(meter)["relay"] == "closed"

    late = rig.command(CommandAction.RELAY_TRIP, [meter], valid_s=-1)
    he.send(late)
    await until(lambda: ("expired", None, "valid_until passed") in he.steps(late.id), "expired")
    assert fleet.control.relay(meter)["relay"] == "closed"


async def test_unsynced_clock_refuses_relay_commands_and_flags_readings(rig: Any) -> None:
    fleet, gw, he = rig.fleet, rig.gateway, rig.headend
    meter = BUS2[1]
    rig.trusted = False
    await gw.energy_job()
    gw.publish_status()
    refused = rig.command(CommandAction.RELAY_TRIP, [meter])
    he.send(refused)
    await until(lambda: ("refused", None, "clock_unsynced") in he.steps(refused.id), "refusal")
    await rig.drained()
    assert fleet.control.relay(meter)["relay"] == "closed"
    with he.lock:
        unsynced = list(he.readings)
        assert he.statuses[-1].clock_synced is False
    assert {r.meter for r in unsynced} == set(fleet.meters)
    assert all("clock_unsynced" in r.flags for r in unsynced)

    rig.trusted = True
    await gw.energy_job()
    gw.publish_status()
    accepted = rig.command(CommandAction.RELAY_TRIP, [meter])
    he.send(accepted)
    await until(lambda: ("executed", None, None) in he.steps(accepted.id), "trip once synced")
    await rig.drained()
    assert fleet.control.relay(meter)["relay"] == "open"
    with he.lock:
        synced = he.readings[len(unsynced) :]
        assert he.statuses[-1].clock_synced is True
    assert synced and not any("clock_unsynced" in r.flags for r in synced)


async def test_read_and_backfill_commands_report_per_meter(rig: Any) -> None:
    fleet, he = rig.fleet, rig.headend
    silent = BUS1[1]
    fleet.control.set_faults(silent, silent=True)
    read = rig.command(CommandAction.READ, [BUS1[0], silent, "nope"])
    he.send(read)
    await until(lambda: any(s == "failed" and m is None for s, m, _ in he.steps(read.id)),
                "read summary")  # fmt: skip
    steps = he.steps(read.id)
    assert ("refused", "nope", "unknown_meter") in steps
    assert ("executed", BUS1[0], None) in steps
    assert any(s == "failed" and m == silent and r.startswith("no_reply") for s, m, r in steps)
    today = rig.clock.now().astimezone(ZONE).date()
    fill = rig.command(CommandAction.BACKFILL, [BUS2[0]])
    fill = fill.model_copy(update={"params": {"from": str(today - timedelta(days=3))}})
    he.send(fill)
    await until(lambda: ("executed", None, None) in he.steps(fill.id), "back-fill executed")
    result = next(r for r in he.results if r.id == fill.id and r.meter == BUS2[0])
    assert result.detail["stored"] == [str(today - timedelta(days=3))]


# -- meter time sync ---------------------------------------------------------------------------


async def test_scheduled_time_sync_waits_out_the_freeze_window_and_never_fixes_large_drift(
    mosquitto: Any, tmp_path: Any
) -> None:
    rig, close = await start_rig(mosquitto, tmp_path, datetime(2026, 11, 24, 23, 55, tzinfo=ZONE))
    try:
        fleet, gw, clock = rig.fleet, rig.gateway, rig.clock
        fleet.control.drift(BUS1[0], offset_s=30)  # a broadcast fixes this …
        fleet.control.drift(BUS2[0], offset_s=400)  # … but not this: a site visit
        await gw.events_job()  # 23:55: within 10 minutes of midnight, no broadcast
        assert gw.store.get_state("timesync.last") is None
        assert abs(rig.skew_s(BUS1[0]) - 30) < 2

        clock.jump(20 * 60)  # 00:15 the next day, clear of the window
        await gw.events_job()
        assert abs(rig.skew_s(BUS1[0])) < 2  # synchronised by the broadcast on bus1
        assert abs(rig.skew_s(BUS2[0]) - 400) < 2  # bus2: no meter a broadcast may fix
        assert set(gw.store.get_state("timesync.last")) == {"bus1"}
        await rig.drained()
        levels = {e.details["level"] for e in rig.headend.events_of(BUS2[0], "clock_drift")}
        assert "site_visit" in levels

        fleet.control.drift(BUS1[1], offset_s=-20)
        clock.jump(3600)
        await gw.events_job()  # once a day: the second drift waits for tomorrow
        assert abs(rig.skew_s(BUS1[1]) + 20) < 2
    finally:
        await close()


# -- daily frozen back-fill --------------------------------------------------------------------


async def test_daily_frozen_values_are_backfilled_after_a_two_day_uplink_less_gap(
    mosquitto: Any, tmp_path: Any
) -> None:
    """Gateway I: the head-end gets each missed day once, flagged, with the meter's values."""
    start = datetime(2026, 11, 24, 10, 1, tzinfo=ZONE)
    rig, close = await start_rig(mosquitto, tmp_path, start, backfill_days=3)
    try:
        gw, he, clock, fleet = rig.gateway, rig.headend, rig.clock, rig.fleet
        await gw.frozen_jobs.catch_up()
        await rig.drained()
        with he.lock:
            before = {
                (r.meter, r.freeze_time) for r in he.readings if r.kind.value == "daily_frozen"
            }
        dlt = [m for m in fleet.meters if ":" not in m]
        assert len(before) == 3 * len(dlt)

        mosquitto.stop()  # no uplink for two days
        clock.jump(2 * 86400)
        await gw.frozen_jobs.daily()
        assert gw.store.first_unacked() is not None  # held in the store meanwhile
        mosquitto.start()
        await rig.drained(timeout=90)  # after paho's reconnect back-off (and an Ack timeout)
    finally:
        await close()
    with he.lock:
        frozen = [r for r in he.readings if r.kind.value == "daily_frozen"]
    new = [r for r in frozen if (r.meter, r.freeze_time) not in before]
    days = sorted({r.freeze_time for r in new})
    assert len(days) == 2 and len(new) == 2 * len(dlt)  # each missed day once per meter
    assert len({(r.meter, r.freeze_time) for r in frozen}) == len(frozen)  # nothing twice
    for r in new:
        local = r.freeze_time.astimezone(ZONE)
        assert (local.hour, local.minute) == (0, 0)
        assert ("backfilled" in r.flags) == (local.date() < days[-1].astimezone(ZONE).date())
        ts = r.freeze_time.timestamp()
        expected = fleet.meters[r.meter].registered(ts)[0]
        assert abs(float(r.values["energy.active.import.total"]) - sum(expected)) < 0.02
