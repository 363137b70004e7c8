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


def test_load_profile_and_settlement_reads_count_in_the_bus_budget() -> None:
    doc = fleet(100, events=15)
    base = bus_utilisation(parse_config(doc, Path("gw.toml")))["bus1"]
    doc["schedule"] |= {"settlement_periods": 3}
    settle = bus_utilisation(parse_config(doc, Path("gw.toml")))["bus1"]
    doc["schedule"] |= {"load_profile_minutes": 15, "load_profile_categories": [1, 2, 3, 4, 5, 6]}
    profile = bus_utilisation(parse_config(doc, Path("gw.toml")))["bus1"]
    assert base < settle < base * 1.02  # one read per meter and day
    assert profile > base + 0.15  # six categories every 15 minutes: long replies, a lot of bus
    warnings = config_warnings(parse_config(doc, Path("gw.toml")), where="gw.toml")
    assert base < 0.7 < profile and "load_profile_minutes" in warnings[0]
    # hourly reads of energy records cost about the same bus time as reads every 15 minutes
    # (the same records, fewer requests): the budget counts records, not only requests
    doc["schedule"] |= {"load_profile_categories": [4]}
    quarter = bus_utilisation(parse_config(doc, Path("gw.toml")))["bus1"]
    doc["schedule"] |= {"load_profile_minutes": 60}
    hourly = bus_utilisation(parse_config(doc, Path("gw.toml")))["bus1"]
    assert base < hourly < quarter


def test_a_1997_meter_costs_settlement_reads_but_no_load_profile_reads() -> None:
    doc = fleet(50, events=15)
    for m in doc["meters"]:
        m["protocol"] = "dlt645-1997"
    base = bus_utilisation(parse_config(doc, Path("gw.toml")))["bus1"]
    doc["schedule"] |= {"load_profile_minutes": 15}
    assert bus_utilisation(parse_config(doc, Path("gw.toml")))["bus1"] == base
    doc["schedule"] |= {"settlement_periods": 2}
    assert bus_utilisation(parse_config(doc, Path("gw.toml")))["bus1"] > base


def test_history_schedule_keys_are_checked() -> None:
    for bad in ({"load_profile_categories": [0]}, {"load_profile_categories": [4, 4]},
                {"load_profile_minutes": 7}, {"settlement_periods": 13},
                {"settlement_day": 29}, {"settlement_at": "25:00"}):  # fmt: skip
        with pytest.raises(ConfigError):
            parse_config(fleet(1) | {"schedule": bad}, Path("gw.toml"))
