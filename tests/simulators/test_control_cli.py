"""The HTTP control interface, ``taiqu sim ctl``/``serve``, and the gateway config it writes."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tomllib
import urllib.request

import pytest

from simulators.cli import call
from simulators.config import quick_config
from simulators.errors import ControlError, SimConfigError
from simulators.fleet import start_fleet
from simulators.gateway_config import write_gateway_configs

from .conftest import stop_serving

pytestmark = pytest.mark.integration
A1 = "202611240001"


async def test_http_control_switches_faults_and_reads_truth():
    async with start_fleet(quick_config(meters=2), control_http=True) as fleet:
        url = fleet.control_url
        assert url.startswith("http://127.0.0.1:")
        result = await asyncio.to_thread(call, url, "set_faults", {"target": A1, "drop": 0.25})
        assert result["drop"] == 0.25
        assert fleet.buses["bus1"].faults_for(A1).drop == 0.25
        truth = await asyncio.to_thread(call, url, "truth_meter", {"meter": A1})
        assert truth["relay"] == "closed" and truth["true_kwh"] > 0
        with pytest.raises(ControlError, match="unknown meter"):
            await asyncio.to_thread(call, url, "truth_meter", {"meter": "nope"})
        with pytest.raises(ControlError, match="unknown control method"):
            await asyncio.to_thread(call, url, "format_disk", {})
        get = f"{url}/api/faults?target={A1}"
        body = await asyncio.to_thread(
            lambda: json.loads(urllib.request.urlopen(get, timeout=5).read())
        )
        assert body == {"ok": True, "result": fleet.control.faults(A1)}


async def test_gateway_config_matches_the_fleet(tmp_path):
    async with start_fleet(quick_config(meters=3, area_total=True)) as fleet:
        [path] = write_gateway_configs(fleet, tmp_path / "gateway.toml")
        data = tomllib.loads(path.read_text())
    assert data["gateway_id"] == "gw-0001" and data["clock"] == "real"
    assert data["buses"][0]["port"] == fleet.endpoints["bus1"]
    assert data["buses"][0]["parity"] == "E" and data["buses"][0]["baud"] == 2400
    roles = {m["address"]: m["role"] for m in data["meters"]}
    assert roles == {
        "202611240001": "customer",
        "202611240002": "customer",
        "202611240003": "customer",
        "202611249999": "area_total",
    }


def test_bad_fleet_file_names_the_key(tmp_path):
    from simulators.config import load_config

    bad = tmp_path / "fleet.toml"
    bad.write_text('[[buses]]\nname = "b"\n[[meters]]\nbus = "b"\naddress = "12"\n')
    with pytest.raises(SimConfigError, match=r"fleet.toml: meters.0.*12 decimal digits"):
        load_config(bad)


def test_cli_serve_prints_meters_and_ctl_talks_to_it(tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "taiqu.cli", "sim", "serve", "--meters", "2", "--listen", "tcp://127.0.0.1:0",
         "--control", "127.0.0.1:0", "--write-gateway-config", str(tmp_path / "gw.toml")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        lines = []
        while not any(line.startswith("serving") for line in lines):
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
            lines.append(line)
        text = "".join(lines)
        assert "meter 202611240001" in text and "socket://127.0.0.1:" in text
        control = next(line.split()[1] for line in lines if line.startswith("control"))
        out = subprocess.run(
            [sys.executable, "-m", "taiqu.cli", "sim", "ctl", "set_faults", f"target={A1}", "silent=true", "--url", control],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["silent"] is True
        bad = subprocess.run(
            [sys.executable, "-m", "taiqu.cli", "sim", "ctl", "power", "meter=nope", "on=false", "--url", control],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert (
            bad.returncode == 2 and "unknown meter" in bad.stderr and "Traceback" not in bad.stderr
        )
        assert tomllib.loads((tmp_path / "gw.toml").read_text())["meters"][0]["address"] == A1
    finally:
        stop_serving(proc)
        proc.stdout.close()
        proc.stderr.close()


def test_cli_serve_rejects_a_bad_protocol_cleanly():
    out = subprocess.run(
        [sys.executable, "-m", "taiqu.cli", "sim", "serve", "--protocol", "modbus:FOO", "--control", ""],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 2 and "model" in out.stderr and "Traceback" not in out.stderr


def test_ctrl_c_stops_serve_started_with_sigint_ignored():
    """A shell's background job (``taiqu sim serve &``, ``nohup make test &``) starts commands
    with SIGINT ignored; Python keeps ignoring it and asyncio installs no handler, so Ctrl-C
    (or the tests' SIGINT) did nothing.  ``serve`` restores the default interrupt handler."""
    serve = [sys.executable, "-m", "taiqu.cli", "sim", "serve", "--meters", "1",
             "--listen", "tcp://127.0.0.1:0", "--control", ""]  # fmt: skip
    proc = subprocess.Popen(
        ["sh", "-c", 'trap "" INT; exec "$@"', "sh", *serve],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        while not (line := proc.stdout.readline()).startswith("serving"):
            assert line, proc.stderr.read()
    finally:
        stop_serving(proc, timeout=15)
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == 0
