"""gateway.toml: loading, field and cross-field validation, messages that name key and fix."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from gateway.config import (
    PASSWORD_ENV,
    ConfigError,
    GatewayConfig,
    load_config,
    parse_config,
)
from gateway.config.secrets import resolve_secrets

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "gateway.toml"


def base(**over) -> dict:
    doc = {
        "gateway_id": "gw-1",
        "signatures": {"required": False},  # a test bench (test_config_security.py: the default)
        "buses": [{"name": "bus1", "port": "socket://127.0.0.1:7001", "baud": 2400}],
        "meters": [
            {"bus": "bus1", "protocol": "dlt645-2007", "address": "202611240001"},
            {"bus": "bus1", "protocol": "dlt645-2007", "address": "202611240002"},
        ],
    }
    doc.update(over)
    return doc


def problems(doc: dict) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(doc, Path("gw.toml"))
    return info.value.problems


def test_example_file_is_valid():
    cfg = load_config(EXAMPLE)
    assert cfg.gateway_id == "gw-0001"
    assert [m.id for m in cfg.meters][:2] == ["202611240001", "202611240002"]
    assert cfg.meters[0].role == "area_total"
    assert cfg.schedule.daily_frozen_at.hour == 0 and cfg.schedule.daily_frozen_at.minute == 5
    assert cfg.signatures_required and cfg.signatures.trust_file is not None


def test_defaults_follow_the_agreed_format():
    cfg = parse_config(base(), Path("gw.toml"))
    assert cfg.schedule.energy_minutes == 15 and cfg.schedule.events_minutes == 5
    assert cfg.schedule.instant_minutes == 0 and cfg.schedule.backfill_days == 7
    assert cfg.buses[0].parity == "E" and cfg.buses[0].bits_per_char == 11
    assert cfg.broker.port == 1883 and cfg.clock == "real"


def test_accelerated_clock_is_accepted():
    doc = tomllib.loads(
        'gateway_id = "g"\nclock = { start = 2026-01-01T00:00:00+08:00, factor = 60 }\n'
        '[[buses]]\nname = "b"\nport = "/dev/null"\n'
    )
    cfg = parse_config(doc, Path("gw.toml"))
    assert cfg.clock != "real" and cfg.clock.factor == 60  # type: ignore[union-attr]


def test_duplicate_address_on_a_bus_names_key_and_fix():
    doc = base()
    doc["meters"][1]["address"] = "202611240001"
    doc["meters"][1]["id"] = "other"
    (msg,) = problems(doc)
    assert msg.startswith("gw.toml: meters[1].address:")
    assert "already meters[0]" in msg and "unique per bus" in msg


def test_same_address_on_two_buses_is_fine():
    doc = base(buses=[{"name": "a", "port": "socket://h:1"}, {"name": "b", "port": "socket://h:2"}])
    doc["meters"] = [
        {"id": "m1", "bus": "a", "protocol": "dlt645-2007", "address": "202611240001"},
        {"id": "m2", "bus": "b", "protocol": "dlt645-2007", "address": "202611240001"},
    ]
    assert len(parse_config(doc, Path("x")).meters) == 2


def test_one_bus_per_port():
    doc = base(buses=[{"name": "a", "port": "socket://h:1"}, {"name": "b", "port": "SOCKET://h:1"}])
    doc["meters"] = []
    (msg,) = problems(doc)
    assert "buses[1].port" in msg and "one bus per port" in msg


def test_meter_on_unknown_bus():
    doc = base()
    doc["meters"][0]["bus"] = "nope"
    (msg,) = problems(doc)
    assert "meters[0].bus" in msg and "'nope'" in msg and "bus1" in msg


@pytest.mark.parametrize(
    ("path", "value", "expect"),
    [
        (("buses", 0, "baud"), 2500, "buses[0].baud"),
        (("buses", 0, "parity"), "X", "buses[0].parity"),
        (("meters", 0, "address"), "12345", "meters[0]"),
        (("meters", 0, "protocol"), "iec62056", "meters[0].protocol"),
        (("schedule",), {"energy_minutes": 7}, "schedule.energy_minutes"),
        (("schedule",), {"backfill_days": 63}, "schedule.backfill_days"),
        (("schedule",), {"daily_frozen_at": "25:00"}, "schedule.daily_frozen_at"),
        (("zone",), "Mars/Olympus", "zone"),
        (("gateway_id",), "gw/1", "gateway_id"),
        (("broker",), {"prot": 1}, "broker.prot"),
    ],
)
def test_field_errors_name_the_key(path, value, expect):
    doc = base()
    target = doc
    for p in path[:-1]:
        target = target[p]
    target[path[-1]] = value
    msgs = problems(doc)
    assert any(m.startswith(f"gw.toml: {expect}") for m in msgs), msgs


def test_modbus_meter_needs_model_and_unit_range():
    doc = base()
    doc["meters"] = [
        {"id": "m", "bus": "bus1", "protocol": "modbus", "address": "300", "model": "X"}
    ]
    assert any("1 to 247" in m for m in problems(doc))
    doc["meters"] = [{"id": "m", "bus": "bus1", "protocol": "modbus", "address": "3"}]
    assert any("model" in m for m in problems(doc))


def test_timeouts_must_fit_the_poll_interval():
    doc = base(schedule={"energy_minutes": 1})
    doc["buses"][0].update(baud=1200, retries=5, response_timeout_ms=5000)
    doc["meters"] = [
        {"bus": "bus1", "protocol": "dlt645-2007", "address": f"{i:012d}"} for i in range(1, 10)
    ]
    msgs = problems(doc)
    assert any("energy_minutes" in m and "retries" in m and "buses[0]" in m for m in msgs), msgs


def test_response_timeout_below_wire_time_is_refused():
    doc = base()
    doc["buses"][0].update(baud=1200, response_timeout_ms=50)
    (msg,) = problems(doc)
    assert "response_timeout_ms" in msg and "at least" in msg


def test_unreadable_or_broken_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("gateway_id = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_every_problem_is_listed_at_once():
    doc = base(gateway_id="bad id")
    doc["meters"][0]["bus"] = "nope"
    doc["meters"][1]["address"] = "1"
    assert len(problems(doc)) >= 2


def test_secrets_from_env_and_password_file(tmp_path, monkeypatch):
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    pw = tmp_path / "pw"
    pw.write_text("s3cret\n")
    pw.chmod(0o644)
    cfg = parse_config(base(broker={"password_file": str(pw)}), Path("gw.toml"))
    with pytest.raises(ConfigError, match="chmod 600"):
        resolve_secrets(cfg)
    pw.chmod(0o600)
    secrets = resolve_secrets(cfg)
    assert secrets.username == "gw-1" and secrets.password == "s3cret"
    monkeypatch.setenv(PASSWORD_ENV, "from-env")
    assert resolve_secrets(cfg).password == "from-env"


def test_missing_tls_file_is_named(tmp_path):
    cfg = parse_config(base(broker={"ca_file": str(tmp_path / "ca.pem")}), Path("gw.toml"))
    with pytest.raises(ConfigError, match=r"broker\.ca_file"):
        resolve_secrets(cfg)


def test_meter_round_trips_through_the_archive_form():
    cfg: GatewayConfig = parse_config(base(), Path("gw.toml"))
    from gateway.config import MeterConfig

    for m in cfg.meters:
        assert MeterConfig.from_archive(m.to_archive()) == m
