"""``taiqu field monitor``: both directions of a gateway polling a simulated bus, via its tap."""

from __future__ import annotations

import json
import random
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gateway.bus.link import LinkSettings, SerialLink
from gateway.config import MeterConfig
from gateway.field.cli import app
from gateway.field.monitor import NOISE, REP, REQ, Seen, Splitter, parse_capture_line
from gateway.polling.dlt645 import Dlt645Driver
from gateway.polling.driver import Group
from protocols.dlt645 import Master, ReadData, ReadReply, Slave
from protocols.dlt645.cli import app as dlt645_app
from protocols.modbus.connection import ModbusMaster, ModbusSlave
from protocols.modbus.messages import ReadRegisters, RegistersResponse
from simulators.endpoints import TapEndpoint
from simulators.fleet import Fleet

from .conftest import running_fleet

pytestmark = pytest.mark.realtime  # wall-clock windows on a paced simulated bus: run alone

runner = CliRunner()
A, OLD = "202611240001", "199700000002"


def _poll_like_a_gateway(fleet: Fleet, rounds: int) -> list[bytes]:
    """The gateway's own link and DL/T 645 driver reading energy from both meters."""
    link = SerialLink(LinkSettings(fleet.endpoints["b"]))
    link.open()
    sent = []
    try:
        for _ in range(rounds):
            for meter in (
                MeterConfig(bus="b", protocol="dlt645-2007", address=A),
                MeterConfig(bus="b", protocol="dlt645-1997", address=OLD),
            ):
                driver = Dlt645Driver(meter, "Asia/Shanghai")
                for item in driver.plan(Group.ENERGY):
                    exchange = driver.exchange(item)
                    link.write(exchange.request)
                    sent.append(exchange.request)
                    deadline = time.monotonic() + 1
                    while time.monotonic() < deadline:
                        if exchange.feed(link.read(0.05)) is not None:
                            break
    finally:
        link.close()
    return sent


def _wait_for_sniffer(fleet: Fleet) -> None:
    end = time.monotonic() + 5
    taps = [e for e in fleet._extra_endpoints if isinstance(e, TapEndpoint)]
    while not any(t.clients for t in taps):
        assert time.monotonic() < end, "the monitor never connected to the tap"
        time.sleep(0.01)


def test_monitor_shows_both_directions_and_capture_reads_back(tmp_path: Path) -> None:
    meters = [{"bus": "b", "address": A}, {"bus": "b", "address": OLD, "protocol": "dlt645-1997"}]
    bus = {"name": "b", "pace": False, "tap": "127.0.0.1:0", "faults": {"noise": 3}}
    capture = tmp_path / "bus.cap"
    with running_fleet([bus], meters) as fleet:
        sent: list[bytes] = []

        def master() -> None:
            _wait_for_sniffer(fleet)
            sent.extend(_poll_like_a_gateway(fleet, rounds=2))

        thread = threading.Thread(target=master)
        thread.start()
        result = runner.invoke(
            app,
            ["monitor", fleet.taps["b"], "--duration", "2", "--json", "--capture", str(capture)],
        )
        thread.join(10)
    assert result.exit_code == 0, result.output
    seen = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    requests = [s for s in seen if s["direction"] == REQ]
    replies = [s for s in seen if s["direction"] == REP]
    assert [bytes.fromhex(s["hex"]) for s in requests] == sent  # every request, in order
    assert len(replies) == len(sent) == 4
    assert {s["decoded"]["address"] for s in replies} == {A, OLD}
    assert all(s["decoded"]["message"] == "ReadReply" for s in replies)
    assert any(s["direction"] == NOISE for s in seen)  # the bus's noise fault, shown as hex
    times = [s["time"] for s in seen]
    assert times == sorted(times)

    decoded = runner.invoke(dlt645_app, ["decode", "--capture", str(capture)])
    assert decoded.exit_code == 0, decoded.output
    frames = [json.loads(line) for line in decoded.stdout.splitlines() if line.startswith("{")]
    assert [f["direction"] for f in frames] == [REQ, REP] * 4
    assert frames[1]["identifier"]["values"]["energy.active.import.total"]["unit"] == "kWh"


def _traffic() -> tuple[bytes, list[tuple[str, str]]]:
    dl_req = Master().send(ReadData(A, 0x00010000))
    dl_rep = Slave().send(ReadReply(A, 0x00010000, {"energy.active.import.total": 12.5}))
    mb_req = ModbusMaster().send(ReadRegisters(7, 4, 0, 2))
    mb_rep = ModbusSlave().send(RegistersResponse(7, 4, (0x4366, 0x0000)))
    noise = bytes([0x00, 0x13, 0x37])
    wire = dl_req + dl_rep + noise + mb_req + mb_rep + b"\x68\x01\x02"  # a torn frame at the end
    expected = [
        (REQ, dl_req.hex()),
        (REP, dl_rep.hex()),
        (NOISE, noise.hex()),
        (REQ, mb_req.hex()),
        (REP, mb_rep.hex()),
        (NOISE, "680102"),
    ]
    return wire, expected


@pytest.mark.parametrize("seed", range(20))
def test_splitter_is_independent_of_chunking(seed: int) -> None:
    wire, expected = _traffic()
    rng = random.Random(seed)
    splitter = Splitter()
    got: list[Seen] = []
    i = 0
    while i < len(wire):
        n = rng.randint(1, 9)
        got += splitter.feed(float(i), wire[i : i + n])
        i += n
    got += splitter.flush(99.0)
    assert [(s.direction, s.raw.hex()) for s in got] == expected
    assert got[1].decoded is not None and got[1].decoded["message"] == "ReadReply"
    assert got[4].protocol == "modbus" and (got[4].decoded or {})["kind"] == "response"


def test_capture_lines_round_trip() -> None:
    line = Seen(1_765_000_000.25, REQ, b"\xfe\x68").capture_line()
    when, direction, raw = parse_capture_line(line) or ("", "", b"")
    assert when.startswith("2025-") and direction == REQ and raw == b"\xfe\x68"
    assert parse_capture_line("# comment") is None
    with pytest.raises(ValueError):
        parse_capture_line("garbage")


def test_decode_capture_rejects_a_bad_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.cap"
    bad.write_text("2026-01-01T00:00:00+00:00 sideways 6816\n")
    result = runner.invoke(dlt645_app, ["decode", "--capture", str(bad)])
    assert result.exit_code == 2 and "bad.cap:1" in result.output


def test_monitor_raw_prints_hex_with_direction_and_no_decoding() -> None:
    meters = [{"bus": "b", "address": A}]
    bus = {"name": "b", "pace": False, "tap": "127.0.0.1:0"}
    with running_fleet([bus], meters) as fleet:
        sent: list[bytes] = []

        def master() -> None:
            _wait_for_sniffer(fleet)
            link = SerialLink(LinkSettings(fleet.endpoints["b"]))
            link.open()
            request = Master().send(ReadData(A, 0x00010000))
            link.write(request)
            sent.append(request)
            link.read(0.5)
            link.close()

        thread = threading.Thread(target=master)
        thread.start()
        result = runner.invoke(app, ["monitor", fleet.taps["b"], "--duration", "1", "--raw"])
        thread.join(10)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert any(f"→ req   dlt645 {sent[0].hex(' ')}" in line for line in lines)
    assert any("← rep   dlt645 fe fe fe fe 68 01 00 24 11 26 20 68 91" in line for line in lines)
    assert "ReadReply" not in result.output  # --raw: no decoding


def test_monitor_on_a_missing_device_exits_5() -> None:
    result = runner.invoke(app, ["monitor", "/dev/ttyUSB-none", "--duration", "0.1"])
    assert result.exit_code == 5
