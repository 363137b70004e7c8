"""Configuration warnings: a bus the schedule over-books, a Modbus meter off its factory line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from gateway.cli import app
from gateway.config import ConfigError, parse_config
from gateway.config.budget import bus_utilisation, config_warnings

BASE: dict[str, Any] = {"gateway_id": "gw-1", "signatures": {"required": False}}


def fleet(n: int, baud: int = 2400, events: int = 5) -> dict[str, Any]:
    return BASE | {
        "schedule": {"events_minutes": events},
        "buses": [{"name": "bus1", "port": "socket://127.0.0.1:7001", "baud": baud}],
        "meters": [
            {"bus": "bus1", "protocol": "dlt645-2007", "address": f"2026{i:08d}"}
            for i in range(1, n + 1)
        ],
    }


def test_events_sweeps_count_in_the_bus_budget() -> None:
    small = parse_config(fleet(20), Path("gw.toml"))
    big = parse_config(fleet(140), Path("gw.toml"))
    assert bus_utilisation(small)["bus1"] < 0.7 < bus_utilisation(big)["bus1"]
    warnings = config_warnings(big, where="gw.toml")
    assert len(warnings) == 1 and "buses[0] (bus1)" in warnings[0] and "events_minutes" in warnings[0]
    # the same meters polled for events every 15 minutes fit
    assert config_warnings(parse_config(fleet(140, events=15), Path("gw.toml"))) == []


def test_a_meter_at_its_own_slower_line_costs_more_bus_time() -> None:
    doc = fleet(20)
    fast = bus_utilisation(parse_config(doc, Path("gw.toml")))["bus1"]
    for m in doc["meters"]:
        m["line"] = "1200 8E1"
    slow = bus_utilisation(parse_config(doc, Path("gw.toml")))["bus1"]
    assert slow > 1.5 * fast


def test_a_modbus_meter_off_its_factory_line_is_a_warning_not_an_error() -> None:
    doc = BASE | {
        "buses": [{"name": "bus1", "port": "socket://127.0.0.1:7001", "baud": 2400}],
        "meters": [
            {"id": "bus1:1", "bus": "bus1", "protocol": "modbus", "address": "1", "model": "SDM630"},
            {"id": "bus1:2", "bus": "bus1", "protocol": "modbus", "address": "2", "model": "SDM630",
             "line": "9600 8N1"},
        ],
    }
    warnings = config_warnings(parse_config(doc, Path("gw.toml")), where="gw.toml")
    assert len(warnings) == 1 and "meters[0] (bus1:1, SDM630)" in warnings[0]
    assert 'line = "9600 8N1"' in warnings[0]


def test_a_bad_line_setting_names_the_key() -> None:
    doc = fleet(1)
    doc["meters"][0]["line"] = "1200 8Q1"
    with pytest.raises(ConfigError) as info:
        parse_config(doc, Path("gw.toml"))
    assert any("meters[0].line" in p for p in info.value.problems)


def test_check_config_prints_the_warnings_and_the_predicted_bus_use(tmp_path: Path) -> None:
    lines = [
        'gateway_id = "gw-1"', "[signatures]", "required = false", "[schedule]",
        "events_minutes = 5", "[[buses]]", 'name = "bus1"', 'port = "socket://127.0.0.1:7001"',
    ]
    for i in range(1, 141):
        lines += ["[[meters]]", 'bus = "bus1"', 'protocol = "dlt645-2007"',
                  f'address = "2026{i:08d}"']
    path = tmp_path / "gateway.toml"
    path.write_text("\n".join(lines) + "\n")
    done = CliRunner().invoke(app, ["check-config", "--config", str(path)])
    assert done.exit_code == 0, done.output
    assert "warning:" in done.output and "predicted bus use bus1" in done.output
