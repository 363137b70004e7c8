"""Config keys of the clock trust, time sync, commands and health sections: defaults and errors."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.clock.trust import make_clock_trust
from gateway.config import ConfigError, parse_config
from taiqu.clock import ManualClock

# -- config ------------------------------------------------------------------------------------

BASE: dict[str, Any] = {
    "gateway_id": "gw-1",
    "signatures": {"required": False},
    "buses": [{"name": "bus1", "port": "socket://127.0.0.1:7001"}],
}


def test_clock_trust_defaults_to_trusted_only_for_an_accelerated_clock() -> None:
    real = parse_config(BASE, Path("gw.toml"))
    fast = parse_config(
        BASE | {"clock": {"start": "2026-11-24T00:00:00+08:00", "factor": 60}}, Path("gw.toml")
    )
    assert real.clock_trust_source == "system" and fast.clock_trust_source == "trusted"
    clock = ManualClock()
    assert make_clock_trust(fast.clock_trust_source, fast.clock_trust.headend_tolerance_s, clock).synced() is True
    untrusted = parse_config(BASE | {"clock_trust": {"source": "untrusted"}}, Path("gw.toml"))
    trust = make_clock_trust(untrusted.clock_trust_source, untrusted.clock_trust.headend_tolerance_s, clock)
    assert trust.synced() is False and trust.flags() == frozenset({"clock_unsynced"})


def test_headend_source_accepts_a_head_end_time_that_agrees_with_the_gateway_clock() -> None:
    cfg = parse_config(BASE | {"clock_trust": {"source": "headend"}}, Path("gw.toml"))
    clock = ManualClock()
    trust = make_clock_trust(cfg.clock_trust_source, cfg.clock_trust.headend_tolerance_s, clock)
    trust.sources = ()  # no NTP answer here
    assert trust.synced() is False
    assert trust.headend_time(clock.now() + timedelta(minutes=5)) is False
    assert trust.headend_time(clock.now() + timedelta(seconds=3)) is True
    assert trust.synced() is True


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ({"time_sync": {"min_drift_s": 400}}, "time_sync"),
        ({"time_sync": {"drift_event_s": 600}}, "time_sync"),
        ({"commands": {"reconnect_window_s": -1}}, "commands.reconnect_window_s"),
        ({"health": {"metrics_port": 70000}}, "health.metrics_port"),
        ({"clock_trust": {"source": "ntp"}}, "clock_trust.source"),
    ],
)
def test_bad_new_keys_name_the_key(section: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(BASE | section, Path("gw.toml"))
    assert any(f"gw.toml: {key}" in line for line in info.value.problems), info.value.problems
