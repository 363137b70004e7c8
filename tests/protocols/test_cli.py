"""The field tools' shared voice: hex parsing, meter-local times, frames found in a capture."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime

import pytest
import typer

from protocols.cli import FieldTool
from protocols.dlt645.describe import describe_frame
from protocols.dlt645.stream import StreamDecoder

TOOL = FieldTool("dlt645", "DL/T 645")
REQUEST = "FE FE FE FE 68 12 90 78 56 34 12 68 11 04 33 33 34 33 68 16"  # shared/DLT645.md


def fails_with(
    capsys: pytest.CaptureFixture[str], call: Callable[..., object], *args: object
) -> str:
    """What ``call(*args)`` printed on stderr before exiting with status 2."""
    with pytest.raises(typer.Exit) as exc:
        call(*args)
    assert exc.value.exit_code == 2
    err: str = capsys.readouterr().err
    assert err.startswith("taiqu dlt645: ") and err.count("\n") == 1
    return err


@pytest.mark.parametrize(
    ("parts", "expected"),
    [(["68 16"], b"\x68\x16"), (["0x68:0X16", "fe-fe"], b"\x68\x16\xfe\xfe"), (["A_b"], b"\xab")],
)
def test_hex_takes_any_separator(parts: list[str], expected: bytes) -> None:
    assert TOOL.hex(parts) == expected


@pytest.mark.parametrize(
    ("parts", "why"),
    [([" :-"], "no hex given"), (["68 1g"], "'g' is not a hex digit"), (["681"], "odd number")],
)
def test_bad_hex_is_one_line_and_status_2(
    capsys: pytest.CaptureFixture[str], parts: list[str], why: str
) -> None:
    assert why in fails_with(capsys, TOOL.hex, parts)


def test_meter_time_is_local_and_iso(capsys: pytest.CaptureFixture[str]) -> None:
    assert TOOL.meter_time("2026-12-06T08:30:00", "--time") == datetime(2026, 12, 6, 8, 30)
    assert TOOL.meter_time(None, "--time").microsecond == 0
    assert "not an ISO time" in fails_with(capsys, TOOL.meter_time, "6 Dec", "--time")
    assert "without an offset" in fails_with(
        capsys, TOOL.meter_time, "2026-12-06T08:30:00+08:00", "--time"
    )


def test_print_frames_prints_json_and_notes_noise(capsys: pytest.CaptureFixture[str]) -> None:
    raw = bytes.fromhex("00 11") + TOOL.hex([REQUEST])
    TOOL.print_frames(raw, StreamDecoder(), describe_frame, pretty=False)
    out, err = capsys.readouterr()
    (line,) = out.splitlines()
    assert json.loads(line)["address"] == "123456789012"
    assert err == "taiqu dlt645: skipped 2 bytes of noise, 0 bad checksums\n"
    assert "no DL/T 645 frame in 3 bytes" in fails_with(
        capsys, TOOL.print_frames, b"\x68\x00\x16", StreamDecoder(), describe_frame, False
    )
