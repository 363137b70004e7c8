"""Each fault shows on the wire and each scenario in the ground truth (in-memory link, no pacing)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from protocols.dlt645 import (
    NEED_DATA,
    AbnormalReply,
    ControlAck,
    ControlAction,
    Master,
    ReadData,
    ReadReply,
    RemoteControl,
    decode_frame,
)
from simulators.config import parse_config
from simulators.fleet import Fleet
from simulators.meter import total
from taiqu.clock import ManualClock

from .conftest import BusHarness

START = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
A1, A2 = "202611240001", "202611240002"
ENERGY = 0x00010000


def fleet(
    meters: list[dict] | None = None, bus: dict | None = None, **extra
) -> tuple[Fleet, ManualClock]:
    clock = ManualClock(START)
    rows = meters or [{"bus": "bus1", "address": A1, "count": 2}]
    config = parse_config(
        {"buses": [{"name": "bus1", "pace": False, **(bus or {})}], "meters": rows, **extra}
    )
    return Fleet(config, clock), clock


def decode(raw: bytes):
    master = Master()
    master.send(ReadData(A1, ENERGY))
    master.receive_data(raw)
    return master.next_event(), master


async def read(h: BusHarness, address: str = A1, di: int = ENERGY):
    master = Master()
    raw = await h.ask(master.send(ReadData(address, di)))
    master.receive_data(raw)
    event = master.next_event()
    return (None if event is NEED_DATA else event), raw, master


async def test_no_fault_baseline_answers():
    f, _ = fleet()
    async with BusHarness(f.buses["bus1"]) as h:
        reply, _raw, _ = await read(h)
        assert isinstance(reply, ReadReply)


async def test_silent_meter_and_silent_bus():
    f, _ = fleet()
    async with BusHarness(f.buses["bus1"]) as h:
        f.control.set_faults(A1, silent=True)
        assert (await read(h))[1] == b""
        assert isinstance((await read(h, A2))[0], ReadReply)
        f.control.clear_faults(A1)
        f.control.set_faults("bus1", silent=True)
        assert (await read(h, A2))[1] == b""


async def test_intermittent_drops_some_replies_reproducibly():
    outcomes = []
    for _ in range(2):
        f, _ = fleet(bus={"seed": 7})
        f.control.set_faults(A1, drop=0.5)
        seen = []
        async with BusHarness(f.buses["bus1"]) as h:
            for _ in range(30):
                seen.append((await read(h))[0] is not None)
        outcomes.append(seen)
    assert outcomes[0] == outcomes[1]  # seeded
    assert 0 < sum(outcomes[0]) < 30


async def test_corrupted_byte_fails_the_checksum():
    f, _ = fleet()
    f.control.set_faults(A1, corrupt=1.0)
    async with BusHarness(f.buses["bus1"]) as h:
        _, raw, _ = await read(h)
        clean = await _clean_reply(f, h)
        assert len(raw) == len(clean)
        assert sum(a != b for a, b in zip(raw, clean, strict=True)) == 1  # one damaged byte


async def _clean_reply(f: Fleet, h: BusHarness) -> bytes:
    f.control.clear_faults(A1)
    return (await read(h))[1]


async def test_late_reply_comes_after_the_extra_delay():
    import time

    f, _ = fleet()
    f.control.set_faults(A1, late_ms=300)
    async with BusHarness(f.buses["bus1"]) as h:
        t = time.monotonic()
        reply, _, _ = await read(h)
        assert reply is not None and time.monotonic() - t >= 0.3


async def test_wrong_address_reply_is_ignored_by_the_master():
    f, _ = fleet()
    f.control.set_faults(A1, wrong_address=True)
    async with BusHarness(f.buses["bus1"]) as h:
        reply, raw, master = await read(h)
        assert reply is None and master.ignored == 1
        assert decode_frame(raw).address != A1


async def test_local_echo_and_noise_precede_the_reply():
    f, _ = fleet(bus={"faults": {"echo": True, "noise": 5}})
    async with BusHarness(f.buses["bus1"]) as h:
        reply, _raw, master = await read(h)
        assert isinstance(reply, ReadReply)
        assert master.echoes == 1  # our own request read back


async def test_power_down_silences_the_meter_and_stops_true_energy():
    f, clock = fleet()
    t0 = clock.now().isoformat()
    f.control.power(A1, False)
    async with BusHarness(f.buses["bus1"]) as h:
        assert (await read(h))[1] == b""
        clock.advance(3600)
        truth = f.control.truth_meter(A1, t0)
        assert truth["true_kwh"] == 0 and not truth["powered"]
        f.control.power(A1, True)
        assert isinstance((await read(h))[0], ReadReply)
    assert len(f.control.events(A1)["power_down"]) == 1


async def test_clock_drift_shows_in_the_meter_time():
    f, clock = fleet()
    f.control.drift(A1, ppm=1000)
    clock.advance(86400)
    async with BusHarness(f.buses["bus1"]) as h:
        reply, _, _ = await read(h, A1, 0x04000102)
        shown = reply.values["meter.time"]
    true_local = (clock.now() + timedelta(hours=8)).time()
    skew = (
        datetime.combine(START.date(), shown) - datetime.combine(START.date(), true_local)
    ).total_seconds()
    assert 80 <= skew <= 90  # 1000 ppm of a day = 86.4 s


async def test_remote_trip_over_the_wire_and_bad_password():
    f, clock = fleet()
    until = (clock.now() + timedelta(hours=9)).replace(tzinfo=None)
    async with BusHarness(f.buses["bus1"]) as h:
        master = Master()
        raw = await h.ask(
            master.send(
                RemoteControl(A1, ControlAction.TRIP, password="02999999", valid_until=until)
            )
        )
        master.receive_data(raw)
        bad = master.next_event()
        assert isinstance(bad, AbnormalReply) and "password_error_or_unauthorised" in bad.reasons
        raw = await h.ask(master.send(RemoteControl(A1, ControlAction.TRIP, valid_until=until)))
        master.receive_data(raw)
        assert isinstance(master.next_event(), ControlAck)
        reply, _, _ = await read(h, A1, 0x04000503)
        assert reply.values["status.word3"].raw & (1 << 4)  # relay open
        raw = await h.ask(
            master.send(RemoteControl(A1, ControlAction.CLOSE_ALLOWED, valid_until=until))
        )
        assert f.control.relay(A1)["relay"] == "armed"
        assert f.control.press_button(A1)["closed"]


async def test_unknown_identifier_gets_an_abnormal_reply():
    f, _ = fleet()
    async with BusHarness(f.buses["bus1"]) as h:
        reply, _, _ = await read(h, A1, 0x0F0F0F0F)
        assert isinstance(reply, AbnormalReply) and reply.reasons == ("no_requested_data",)


# ---------------------------------------------------------------- scenarios (ground truth)


def at(hours: float) -> str:
    return (START + timedelta(hours=hours)).isoformat()


def test_cover_opening_is_recorded_at_its_time():
    f, clock = fleet(
        [
            {
                "bus": "bus1",
                "address": A1,
                "scenarios": [{"kind": "meter_cover_open", "at": at(2), "duration_s": 600}],
            }
        ]
    )
    clock.advance(3 * 3600)
    events = f.control.events(A1)
    assert events["meter_cover"] == [{"start": at(2), "end": at(2 + 1 / 6)}]
    assert events["terminal_cover"] == []


def test_reverse_stopped_and_bypass_distort_registered_not_true_energy():
    rows = [
        {"bus": "bus1", "address": "000000000001", "scenarios": [{"kind": "reverse", "at": at(0)}]},
        {"bus": "bus1", "address": "000000000002", "scenarios": [{"kind": "stopped", "at": at(0)}]},
        {
            "bus": "bus1",
            "address": "000000000003",
            "scenarios": [{"kind": "bypass", "at": at(0), "fraction": 0.2}],
        },
    ]
    f, clock = fleet(rows)
    clock.advance(24 * 3600)
    rev, stop, byp = (f.control.truth_meter(f"00000000000{i}", at(0)) for i in (1, 2, 3))
    assert rev["registered_import_kwh"] == 0 and rev["registered_export_kwh"] == pytest.approx(
        rev["true_kwh"]
    )
    assert stop["registered_import_kwh"] == 0 and stop["true_kwh"] > 0
    assert byp["registered_import_kwh"] == pytest.approx(0.2 * byp["true_kwh"])


def test_neutral_bypass_registers_a_fraction_and_keeps_the_whole_neutral_current():
    """The live terminal jumpered: live current and registers follow ``fraction`` of the load,
    the neutral current (02800001) stays the whole load's; ``normal`` undoes it."""
    from simulators.readings import instant_values

    rows = [
        {"bus": "bus1", "address": A1, "profile": "flat", "mean_kw": 2.0,
         "scenarios": [{"kind": "neutral_bypass", "at": at(0), "fraction": 0.3}]},
        {"bus": "bus1", "address": A2, "profile": "flat", "mean_kw": 2.0},
    ]  # fmt: skip
    f, clock = fleet(rows)
    clock.advance(6 * 3600)
    ts = clock.now().timestamp()
    thief, honest = (instant_values(f.meters[a], ts) for a in (A1, A2))
    assert thief["current.a"] == pytest.approx(0.3 * thief["current.n"], rel=1e-6)
    assert thief["current.n"] > 5 and honest["current.n"] == pytest.approx(honest["current.a"])
    truth = f.control.truth_meter(A1, at(0))
    assert truth["registered_import_kwh"] == pytest.approx(0.3 * truth["true_kwh"])
    f.control.scenario(A1, "normal")
    clock.advance(60)
    after = instant_values(f.meters[A1], clock.now().timestamp())
    assert after["current.n"] == pytest.approx(after["current.a"])


async def test_meter_replacement_keeps_final_and_start_readings():
    rows = [
        {
            "bus": "bus1",
            "address": A1,
            "scenarios": [
                {
                    "kind": "replace",
                    "at": at(5),
                    "new_address": "202611240099",
                    "start_reading": 12.5,
                }
            ],
        }
    ]
    f, clock = fleet(rows)
    clock.advance(10 * 3600)
    old = f.control.truth_meter(A1, at(0))
    new = f.control.truth_meter("202611240099", at(5))
    assert not old["installed"] and new["installed"]
    assert f.control.truth_meter(A1, at(5), at(10))["registered_import_kwh"] == 0
    assert new["import_register_start"] == pytest.approx(12.5)
    assert new["registered_import_kwh"] == pytest.approx(new["true_kwh"])
    async with BusHarness(f.buses["bus1"]) as h:
        assert (await read(h, A1))[1] == b""  # the old meter is off the bus
        reply, _, _ = await read(h, "202611240099")
        assert float(reply.values["energy.active.import.total"]) == pytest.approx(
            12.5 + new["true_kwh"], abs=0.011
        )


def test_area_total_meter_registers_customer_loads_plus_technical_loss():
    rows = [
        {"bus": "bus1", "address": "000000000001", "count": 5},
        {"bus": "bus1", "address": "000000000999", "role": "area_total"},
    ]
    f, clock = fleet(rows, areas=[{"name": "a", "technical_loss": 0.05}])
    f.control.relay("000000000002", "trip")
    clock.advance(36 * 3600)
    truth = f.control.truth_area("a", at(0))
    assert truth["total_meter_kwh"] == pytest.approx(truth["customers_true_kwh"] * 1.05)
    assert truth["customers_true_kwh"] == pytest.approx(
        sum(f.control.truth_meter(m, at(0))["true_kwh"] for m in truth["customers"])
    )
    assert f.control.truth_meter("000000000002", at(1))["true_kwh"] == 0


def test_ground_truth_is_reproducible_from_the_seed():
    a, ca = fleet()
    b, cb = fleet()
    ca.advance(50_000)
    cb.advance(50_000)
    assert a.control.truth_meter(A1, at(0)) == b.control.truth_meter(A1, at(0))
    assert total(a.meter(A1).registered(ca.now().timestamp())[0]) > 0
