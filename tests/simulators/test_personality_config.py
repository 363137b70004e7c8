"""Personalities as data: every file loads, bad names and keys are clear errors, CLI entry points."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from simulators.config import parse_config, quick_config
from simulators.errors import ControlError, SimConfigError
from simulators.fleet import Fleet
from simulators.line import LineSettings
from simulators.personalities import describe, load_personality, names

from .conftest import stop_serving


def _row(**row):
    return {"buses": [{"name": "b"}], "meters": [{"bus": "b", "address": "202611240001", **row}]}


def test_every_shipped_personality_loads_and_names_itself():
    assert len(names()) >= 14
    for name in names():
        p = load_personality(name)
        assert p.name == name and p.description
        if p.line:
            assert isinstance(p.line_settings, LineSettings)
    assert {row["name"] for row in describe()} == set(names())


def test_an_unknown_personality_names_the_key_and_the_known_ones():
    with pytest.raises(SimConfigError, match=r"meters\.0.*unknown personality 'grumpy'.*ordinary"):
        parse_config(_row(personality="grumpy"))


def test_a_bad_override_names_the_key():
    with pytest.raises(SimConfigError, match=r"trip_delay_s"):
        parse_config(_row(personality="delayed-relay", personality_overrides={"trip_delay_s": -1}))
    with pytest.raises(SimConfigError, match=r"no_such_key"):
        parse_config(_row(personality_overrides={"no_such_key": 1}))


def test_a_personality_of_another_protocol_is_refused():
    with pytest.raises(SimConfigError, match=r"is a dlt645-1997 meter, the row says"):
        parse_config(_row(personality="dlt645-1997", protocol="dlt645-2007"))


def test_a_bad_line_setting_is_refused():
    with pytest.raises(SimConfigError, match=r"2400 8E1"):
        parse_config(_row(line="fast please"))


def test_a_personality_sets_protocol_model_and_line_unless_the_row_says():
    config = parse_config(
        {
            "buses": [{"name": "b"}],
            "meters": [
                {"bus": "b", "address": "199700000001", "personality": "dlt645-1997"},
                {"bus": "b", "address": "5", "personality": "modbus-gap-exception"},
                {"bus": "b", "address": "202611240001", "personality": "no-blocks",
                 "line": "4800 8E1"},
            ],
        }
    )  # fmt: skip
    fleet = Fleet(config)
    assert fleet.meters["199700000001"].spec.protocol == "dlt645-1997"
    assert fleet.meters["b:5"].spec.model == "SDM630"
    assert str(fleet.meter_line["199700000001"]) == "1200 8E1"
    assert str(fleet.meter_line["202611240001"]) == "4800 8E1"
    assert len(fleet.buses["b"].listeners) == 3  # one per protocol × line setting


def test_quick_config_with_a_personality_runs_the_bus_at_its_line():
    config = quick_config(meters=2, personality="dlt645-1997")
    assert config.buses[0].baud == 1200 and config.meters[0].protocol == "dlt645-1997"
    with pytest.raises(SimConfigError, match="unknown personality"):
        quick_config(personality="nope")


def test_control_names_unknown_meters_and_buses():
    fleet = Fleet(quick_config(meters=1))
    with pytest.raises(ControlError):
        fleet.control.call("readable", {"meter": "nope"})
    with pytest.raises(ControlError, match="unknown bus"):
        fleet.control.call("line", {"bus": "nope"})
    assert fleet.control.call("personalities", {})[0]["name"] in names()


def test_cli_lists_personalities_and_serves_one():
    out = subprocess.run(
        [sys.executable, "-m", "taiqu.cli", "sim", "personalities"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0 and "single-phase" in out.stdout and "1200 8E1" in out.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "taiqu.cli", "sim", "serve", "--personality", "nope", "--control", ""],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert bad.returncode == 2 and "unknown personality" in bad.stderr
    assert "Traceback" not in bad.stderr
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "taiqu.cli", "sim", "serve", "--meters", "2", "--personality",
         "single-phase", "--listen", "tcp://127.0.0.1:0", "--control", "127.0.0.1:0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        lines: list[str] = []
        while not any(line.startswith("serving") for line in lines):
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
            lines.append(line)
        text = "".join(lines)
        assert "rfc2217://127.0.0.1:" in text and "single-phase (2400 8E1)" in text
        control = next(line.split()[1] for line in lines if line.startswith("control"))
        got = subprocess.run(
            [sys.executable, "-m", "taiqu.cli", "sim", "ctl", "readable", "meter=202611240001",
             "--url", control],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert got.returncode == 0, got.stderr
        assert json.loads(got.stdout)["identifiers"]["0201FF00"] == "partial"
    finally:
        stop_serving(proc)
        proc.stdout.close()
        proc.stderr.close()


async def test_gateway_config_of_the_zoo_names_each_meter_s_own_line(tmp_path):
    import tomllib
    from pathlib import Path

    from simulators.config import load_config
    from simulators.fleet import start_fleet
    from simulators.gateway_config import write_gateway_configs

    config = load_config(Path(__file__).parents[2] / "examples" / "zoo-fleet.toml")
    config.control = ""
    config.buses[0].listen = "tcp://127.0.0.1:0"
    config.buses[0].rfc2217 = "127.0.0.1:0"
    async with start_fleet(config) as fleet:
        (path,) = write_gateway_configs(fleet, tmp_path / "gw.toml")
        rfc = fleet.rfc2217["zoo"]
    text = path.read_text()
    parsed = tomllib.loads(text)  # the hints are comments: the file stays what the gateway reads
    assert len(parsed["meters"]) == 14
    assert f'# or port = "{rfc}"' in text
    assert "# this meter runs at 1200 8E1 (dlt645-1997)" in text
    assert text.count("runs at 9600 8N1") == 2
