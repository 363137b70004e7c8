"""Helpers for the meter-zoo tests: a one-bus fleet of one personality, driven by the codecs."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from protocols.dlt645 import NEED_DATA, Master, Version
from protocols.modbus.pdu import NEED_DATA as MODBUS_NEED_DATA
from protocols.modbus.pdu import ModbusMaster, ReadRegisters
from simulators.config import parse_config
from simulators.fleet import Fleet
from taiqu.clock import ManualClock

from .conftest import BusHarness

ZONE = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 3, 15, 12, 0, tzinfo=ZONE)  # a weekday noon, meter-local
A = "202611240001"


def zoo(
    personality: str = "ordinary",
    *,
    address: str = A,
    start: datetime = START,
    overrides: dict[str, Any] | None = None,
    bus: dict[str, Any] | None = None,
    **row: Any,
) -> tuple[Fleet, ManualClock]:
    """One bus (no pacing) with one meter of ``personality`` on a manual clock."""
    clock = ManualClock(start)
    meter = {"bus": "bus1", "address": address, "personality": personality, **row}
    if overrides:
        meter["personality_overrides"] = overrides
    config = parse_config(
        {"buses": [{"name": "bus1", "pace": False, **(bus or {})}], "meters": [meter]}
    )
    return Fleet(config, clock), clock


async def ask(h: BusHarness, request: Any, version: Version = Version.V2007) -> tuple[Any, bytes]:
    """One DL/T 645 transaction: (reply or None for silence, raw bytes)."""
    master = Master(version)
    raw = await h.ask(master.send(request))
    master.receive_data(raw)
    event = master.next_event()
    return (None if event is NEED_DATA else event), raw


async def ask_modbus(h: BusHarness, request: ReadRegisters) -> tuple[Any, bytes]:
    """One Modbus RTU transaction: (response or None, raw bytes)."""
    master = ModbusMaster()
    raw = await h.ask(master.send(request))
    master.receive_data(raw)
    event = master.next_event()
    return (None if event is MODBUS_NEED_DATA else event), raw
