"""``taiqu dlt698``: decode captures to JSON, encode requests to hex, exit 2 on bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from protocols.dlt698 import GetRequestRecord, Selector1, decode_apdu, decode_frame
from protocols.dlt698.cli import app

runner = CliRunner()
# DL/T 698.45 annex H.3 (see test_golden): read address by wildcard and the meter's reply
H3_REQUEST = "68 17 00 43 45 AA AA AA AA AA AA 00 5B 4F 05 01 25 40 01 02 00 00 0A 92 16"
H3_REPLY = (
    "68 21 00 C3 05 33 09 20 39 00 00 00 4A 55 85 01 25 40 01 02 00 01 09 06 00 00 39 20 09 33 "
    "00 00 B2 D8 16"
)


def invoke(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def test_decode_capture_with_noise() -> None:
    out = [
        json.loads(line) for line in invoke("decode", H3_REQUEST, "00 68 11", H3_REPLY).splitlines()
    ]
    assert [o["service"] for o in out] == ["GetRequestNormal", "GetResponseNormal"]
    assert out[0]["server"] == {"address": "AAAAAAAAAAAA", "type": "wildcard", "logical": 0}
    assert out[1]["values"] == {"meter.address": "000039200933"}
    assert out[1]["direction"] == "server→client" and out[1]["started_by"] == "client"


def test_decode_reports_dar_and_bad_apdu() -> None:
    from protocols.dlt698 import (
        OAD,
        Frame,
        GetResponseNormal,
        ResultNormal,
        ServerAddress,
        encode_apdu,
        encode_frame,
    )

    refusal = GetResponseNormal(1, ResultNormal(OAD(0x4444, 2), None, 6))
    raw = encode_frame(Frame(0xC3, ServerAddress("000000000001"), encode_apdu(refusal)))
    garbage = encode_frame(Frame(0xC3, ServerAddress("000000000001"), b"\x85\x09"))
    lines = invoke("decode", (raw + garbage).hex()).splitlines()
    assert json.loads(lines[0])["dar"] == ["object_absent"]
    assert "truncated" in json.loads(lines[1])["error"]


def test_encode_get_reproduces_the_annex_frame() -> None:
    out = invoke(
        "encode", "get", "-a", "AAAAAAAAAAAA", "-o", "40010200", "--piid", "37", "--preamble", "0"
    )
    assert out.strip() == H3_REQUEST.upper()


def test_encode_record_by_freeze_time() -> None:
    out = invoke("encode", "record", "-a", "202612060001", "--freeze-time", "2026-12-05T00:00:00")
    request = decode_apdu(decode_frame(bytes.fromhex(out.replace(" ", ""))).apdu)
    assert isinstance(request, GetRequestRecord) and isinstance(request.rsd, Selector1)
    assert request.rsd.value.value.to_datetime().day == 5


@pytest.mark.parametrize(
    "args",
    [
        ["decode", "zz"],
        ["decode", "123"],
        ["decode", "00 11 22"],
        ["encode", "get", "-a", "12", "-o", "0010"],
        ["encode", "get", "-a", "XYZ", "-o", "00100200"],
        ["encode", "action", "-a", "000000000001", "--action", "explode"],
        ["encode", "set-clock", "-a", "000000000001", "-t", "yesterday"],
        ["encode", "set-clock", "-a", "000000000001", "-t", "2026-12-06T00:00:00+08:00"],
        ["encode", "get", "-a", "000000000001", "-o", "00100200", "--client", "300"],
    ],
)
def test_bad_input_exits_2_with_one_line(args: list[str]) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output


def test_taiqu_dispatches_dlt698() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "taiqu.cli", "dlt698", "encode", "release", "-a", "1"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.startswith("FE FE FE FE 68")
