"""``taiqu modbus``: maps, map, decode, encode read; bad input exits 2 with one stderr line."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from protocols.modbus.cli import app
from protocols.modbus.messages import RegistersResponse
from protocols.modbus.registers import encode_values, read_image
from protocols.modbus.rtu import decode_frame, encode_response

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, list(args))


def test_maps_lists_every_model():
    result = run("maps")
    assert result.exit_code == 0
    assert [line.split()[0] for line in result.stdout.splitlines()] == [
        "DDSU666",
        "DTSU666",
        "SDM120",
        "SDM630",
    ]


def test_map_prints_rows_and_json():
    text = run("map", "dtsu666")
    assert text.exit_code == 0 and "0x2006" in text.stdout and "0.1" in text.stdout
    data = json.loads(run("map", "SDM120", "--json").stdout)
    assert data["serial"]["baud"] == 2400
    assert {"quantity": "frequency", "address": 0x46, "function": 4}.items() <= data["registers"][
        6
    ].items()


def test_decode_request_and_response_with_quantities():
    request = json.loads(run("decode", "01 03 00 00 00 0A C5 CD").stdout)
    assert request == {"kind": "request", "unit": 1, "function": 3, "address": 0, "count": 10}
    image = encode_values("SDM120", {"voltage.a": "229.8", "current.a": "1.26"})
    frame = encode_response(RegistersResponse(1, 4, tuple(read_image(image, 4, 0, 8)))).hex()
    result = json.loads(run("decode", frame, "--model", "SDM120", "--address", "0x0").stdout)
    assert result["values"] == {"voltage.a": "229.80", "current.a": "1.260"}
    exception = json.loads(run("decode", "01 83 02 C0 F1").stdout)
    assert exception["name"] == "ILLEGAL_DATA_ADDRESS"


def test_encode_read_prints_the_planned_request_frames():
    result = run(
        "encode",
        "read",
        "--unit",
        "3",
        "--model",
        "DDSU666",
        "--quantity",
        "voltage.a",
        "--quantity",
        "energy.active.export.total",
    )
    assert result.exit_code == 0
    frames = [bytes.fromhex(line.split("#")[0]) for line in result.stdout.splitlines()]
    messages = [decode_frame(f).message for f in frames]
    assert [(m.unit, m.function, m.address, m.count) for m in messages] == [
        (3, 3, 0x2000, 2),
        (3, 3, 0x400A, 2),
    ]


@pytest.mark.parametrize(
    "args",
    [
        ("decode", "zz"),
        ("decode", "01 03 00 00 00 0A C5 CE"),
        ("decode", "01 03 00 00 00 0A C5 CD", "--model", "SDM120"),
        ("decode", "11 04 02 00 0A F8 F4", "--model", "SDM120", "--address", "ten"),
        ("map", "DDS238"),
        ("encode", "read", "--unit", "0", "--model", "SDM120"),
        ("encode", "read", "--unit", "1", "--model", "SDM120", "--quantity", "voltage.z"),
    ],
)
def test_bad_input_exits_2_with_one_line(args):
    result = run(*args)
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr + result.stdout


def test_dispatched_through_taiqu():
    code = "from taiqu.cli import main; main()"
    out = subprocess.run(
        [sys.executable, "-c", code, "modbus", "decode", "zz"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == ["taiqu modbus: 'zz' is not hexadecimal"]
