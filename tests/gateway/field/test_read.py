"""``taiqu field read``: values, raw frames and round-trip time; clear errors and exit codes."""

from __future__ import annotations

import json
import os
import termios
import tty
from collections.abc import Iterator
from decimal import Decimal

import pytest
import serial
from typer.testing import CliRunner

from gateway.errors import LinkError
from gateway.field.cli import app
from gateway.field.port import BUSY, NO_ANSWER, NO_DEVICE, PERMISSION, REFUSED, port_error_code
from simulators.fleet import Fleet
from simulators.meter import Cover

from .conftest import running_fleet, wait_idle

runner = CliRunner()
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:serial.rfc2217")
A = "202611240001"
OLD = "199700000002"


@pytest.fixture(scope="module")
def _fleet() -> Iterator[Fleet]:
    meters = [
        {"bus": "b", "address": A},
        {"bus": "b", "address": OLD, "protocol": "dlt645-1997", "line": "2400 8E1"},
        {"bus": "b", "address": "5", "protocol": "modbus", "model": "SDM120", "line": "2400 8E1"},
    ]
    with running_fleet([{"name": "b", "pace": False}], meters) as running:
        yield running


@pytest.fixture
def fleet(_fleet: Fleet) -> Fleet:
    """The module's fleet once the last test's client has left (one master at a time)."""
    wait_idle(_fleet)
    return _fleet


def _truth(fleet: Fleet, address: str, key: str) -> Decimal:
    meter = fleet.meters[address]
    bus = fleet.buses["b"]
    listener = next(lst for lst in bus.listeners if address in {m.address for m in lst.meters()})
    value = listener.read(meter, 0x00010000, fleet.clock.now().timestamp())[key]  # type: ignore[attr-defined]
    return Decimal(str(value))


@pytest.mark.parametrize("endpoint", ["socket", "rfc2217"])
def test_read_a_meter_over_socket_and_rfc2217(fleet: Fleet, endpoint: str) -> None:
    url = fleet.endpoints["b"] if endpoint == "socket" else fleet.rfc2217["b"]
    result = runner.invoke(
        app, ["read", url, A, "00010000", "meter.time", "status.word3", "--json", "-t", "0.5"]
    )
    assert result.exit_code == 0, result.output
    reads = json.loads(result.output)
    assert [r["item"] for r in reads] == ["00010000", "04000102", "04000503"]
    energy = Decimal(reads[0]["values"]["energy.active.import.total"])
    assert energy == _truth(fleet, A, "energy.active.import.total")
    assert reads[2]["values"]["relay.state"] == "closed"
    for r in reads:
        assert r["frames"][0]["tx"].startswith("fefefefe68010024112620")  # address, LSB first
        assert r["frames"][0]["rx"].endswith("16") and r["rtt_ms"] > 0


def test_table_output_shows_frames_and_round_trip(fleet: Fleet) -> None:
    result = runner.invoke(app, ["read", fleet.endpoints["b"], A, "energy.active.import.total"])
    assert result.exit_code == 0, result.output
    assert "TX fe fe fe fe 68 01 00 24 11 26 20 68 11 04" in result.output
    assert "RX fe fe fe fe 68 01 00 24 11 26 20 68 91" in result.output
    assert "energy.active.import.total = " in result.output and " ms" in result.output


def test_read_a_1997_meter_and_a_modbus_meter(fleet: Fleet) -> None:
    old = runner.invoke(
        app, ["read", fleet.endpoints["b"], OLD, "9010", "-p", "dlt645-1997", "--json"]
    )
    assert old.exit_code == 0, old.output
    assert "energy.active.import.total" in json.loads(old.output)[0]["values"]
    modbus = runner.invoke(
        app,
        ["read", fleet.endpoints["b"], "5", "voltage.a", "frequency", "-p", "modbus",
         "-m", "SDM120", "--json"],
    )  # fmt: skip
    assert modbus.exit_code == 0, modbus.output
    values = {k: v for r in json.loads(modbus.output) for k, v in r["values"].items()}
    assert set(values) == {"voltage.a", "frequency"} and Decimal(values["frequency"]) > 45


def test_no_answer_and_refusal_exit_codes(fleet: Fleet) -> None:
    silent = runner.invoke(
        app, ["read", fleet.endpoints["b"], "202611249999", "00010000", "-t", "0.1"]
    )
    assert silent.exit_code == NO_ANSWER
    assert "no answer" in silent.output
    refused = runner.invoke(app, ["read", fleet.endpoints["b"], A, "0000FF99", "--json"])
    assert refused.exit_code == REFUSED
    assert "refused" in json.loads(refused.output)[0]["error"]


def test_usage_errors_exit_2(fleet: Fleet) -> None:
    address = runner.invoke(app, ["read", fleet.endpoints["b"], "12345678901Z", "00010000"])
    assert address.exit_code == 2 and "not 12 digits" in address.output
    bad = runner.invoke(app, ["read", fleet.endpoints["b"], A, "not-a-quantity"])
    assert bad.exit_code == 2 and "neither" in bad.output
    no_model = runner.invoke(app, ["read", fleet.endpoints["b"], "5", "-p", "modbus"])
    assert no_model.exit_code == 2 and "--model" in no_model.output
    unknown = runner.invoke(
        app, ["read", fleet.endpoints["b"], "5", "x", "-p", "modbus", "-m", "SDM120"]
    )
    assert unknown.exit_code == 2 and "no register" in unknown.output


def test_a_missing_device_is_named_with_the_fix(tmp_path: object) -> None:
    result = runner.invoke(app, ["read", "/dev/ttyUSB-nothing-here", A, "00010000"])
    assert result.exit_code == NO_DEVICE
    text = " ".join(result.output.split())
    assert "no such device" in text and "by-path" in text


def test_a_port_held_exclusively_is_busy() -> None:
    master, slave = os.openpty()
    tty.setraw(slave, termios.TCSANOW)
    path = os.ttyname(slave)
    holder = serial.Serial()
    holder.port, holder.exclusive = path, True
    try:
        try:
            holder.open()
        except serial.SerialException as exc:  # a kernel without TIOCEXCL on ptys
            pytest.skip(f"cannot hold a pty exclusively here: {exc}")
        result = runner.invoke(app, ["read", path, A, "00010000", "--parity", "N"])
    finally:
        holder.close()
        os.close(master)
        os.close(slave)
    assert result.exit_code == BUSY, result.output
    assert "in use by another program" in " ".join(result.output.split())


def test_permission_errors_point_at_dialout() -> None:
    try:
        raise LinkError("cannot open /dev/ttyUSB0") from PermissionError(13, "Permission denied")
    except LinkError as exc:
        assert port_error_code(exc) == PERMISSION


def test_a_long_reply_is_followed_up_and_joined() -> None:
    meters = [{"bus": "f", "address": A, "personality": "follow-up"}]
    with running_fleet([{"name": "f", "pace": False}], meters) as running:
        now = running.clock.now().timestamp()
        running.meters[A].open_cover(Cover.METER, now - 3600, now - 1800)
        result = runner.invoke(app, ["read", running.endpoints["f"], A, "03300D01", "--json"])
    assert result.exit_code == 0, result.output
    (read,) = json.loads(result.output)
    assert len(read["frames"]) == 2  # B1H with 40 value bytes, then 12H → 92H with the rest
    assert read["frames"][0]["rx"][24:26] == "b1"  # after 4 FE, 68, address, 68: the control
    assert "events.meter_cover.record" in read["values"]


def test_an_abbreviated_address_reads_the_matching_meter(fleet: Fleet) -> None:
    result = runner.invoke(app, ["read", fleet.endpoints["b"], "AAAAAAAAAA01", "meter.address"])
    assert result.exit_code == 0, result.output
    assert f"meter.address = {A}" in result.output
