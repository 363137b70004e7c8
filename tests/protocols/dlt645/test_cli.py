"""``taiqu dlt645``: decode captures to JSON, encode requests to hex, exit 2 on bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from protocols.dlt645.cli import app

runner = CliRunner()
ORIENTATION = "FE FE FE FE 68 12 90 78 56 34 12 68 11 04 33 33 34 33 68 16"  # shared/DLT645.md
REPLY = "FE FE 68 12 90 78 56 34 12 68 91 08 33 33 34 33 89 67 45 33 54 16"


def decode(*args: str) -> list[dict]:
    result = runner.invoke(app, ["decode", *args])
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_decode_capture_with_request_noise_and_reply():
    out = decode(*ORIENTATION.split(), "00 11", REPLY)
    assert [o["control"]["direction"] for o in out] == ["request", "reply"]
    assert out[0]["identifier"] == {"di": "00010000", "name": "forward active energy, total"}
    assert out[1]["address"] == "123456789012" and out[1]["version"] == "2007"
    assert out[1]["identifier"]["values"] == {
        "energy.active.import.total": {"value": "1234.56", "unit": "kWh"}
    }


def test_decode_abnormal_reply_names_reasons():
    # 000000000001 answers read with error byte 06 (no data + password) — built by encode below
    from protocols.dlt645 import Frame, encode_frame

    wire = encode_frame(Frame("000000000001", 0xD1, b"\x06")).hex()
    (out,) = decode(wire)
    assert out["control"]["abnormal"] is True
    assert out["error"] == {
        "code": "06",
        "reasons": ["no_requested_data", "password_error_or_unauthorised"],
    }


def test_decode_block_lists_members_and_control_fields():
    from datetime import datetime

    from protocols.dlt645 import ControlAction, Master, RemoteControl

    wire = Master().send(
        RemoteControl("000000000001", ControlAction.KEEP_POWER, valid_until=datetime(2030, 1, 2))
    )
    (out,) = decode(wire.hex())
    assert out["control"]["function"] == "remote_control"
    assert out["command"]["action"] == "keep_power"
    assert out["command"]["valid_until"] == "2030-01-02T00:00:00"


def test_decode_1997_frame_guesses_version():
    from protocols.dlt645 import Master, ReadData, Version

    wire = Master(version=Version.V1997).send(ReadData("000000000001", 0x9010))
    (out,) = decode(wire.hex(" "))
    assert out["version"] == "1997" and out["identifier"]["di"] == "9010"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["encode", "read", "-a", "123456789012", "--di", "00010000"], ORIENTATION),
        (["encode", "read-address"], "FE FE FE FE 68 AA AA AA AA AA AA 68 13 00 DF 16"),
        (["encode", "time-sync", "--time", "2024-02-29T23:59:58", "--preamble", "0"], None),
    ],
)
def test_encode(args, expected):
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    if expected:
        assert result.stdout.strip() == expected
    else:
        assert result.stdout.startswith("68 99 99 99 99 99 99 68 08 06 8B 8C 56 5C 35 57")


def test_encode_then_decode_control_and_freeze():
    result = runner.invoke(
        app,
        [
            "encode",
            "control",
            "-a",
            "000000000001",
            "--action",
            "trip",
            "--valid-until",
            "2030-01-01T00:00:00",
        ],
    )
    (out,) = decode(result.stdout)
    assert out["command"]["action"] == "trip"
    result = runner.invoke(app, ["encode", "freeze", "--when", "99990000"])
    (out,) = decode(result.stdout)
    assert out["address"] == "999999999999"
    assert out["command"]["when"] == {"month": None, "day": None, "hour": 0, "minute": 0}


@pytest.mark.parametrize(
    "args",
    [
        ["decode", "68 ZZ"],
        ["decode", "123"],
        ["decode", "00 11 22"],
        ["encode", "read", "-a", "12345678901X", "--di", "00010000"],
        ["encode", "read", "-a", "123456789012", "--di", "0001"],
        ["encode", "control", "-a", "123456789012", "--action", "explode"],
        ["encode", "baud", "-a", "123456789012", "--baud", "1234"],
        ["encode", "time-sync", "--time", "yesterday"],
        ["encode", "write", "-a", "123456789012", "--di", "04000102", "--value", "25:00:00"],
    ],
)
def test_invalid_input_exits_2_with_one_line(args):
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("taiqu dlt645: ")
    assert "Traceback" not in result.stderr


def test_real_command_never_prints_a_traceback():
    cmd = [sys.executable, "-m", "taiqu.cli", "dlt645", "decode", "68 16 ff"]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert done.returncode == 2 and "Traceback" not in done.stderr
