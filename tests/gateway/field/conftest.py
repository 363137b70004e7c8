"""A simulated fleet served from its own thread, so the blocking field tools can talk to it."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from simulators.config import parse_config
from simulators.fleet import Fleet
from taiqu.clock import ManualClock

START = datetime(2026, 3, 15, 12, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


@contextmanager
def running_fleet(buses: list[dict[str, Any]], meters: list[dict[str, Any]]) -> Iterator[Fleet]:
    """Start a fleet on a background event loop; stop it on exit."""
    fleet = Fleet(parse_config({"buses": buses, "meters": meters}), ManualClock(START))
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(fleet.start(), loop).result(10)
        yield fleet
    finally:
        asyncio.run_coroutine_threadsafe(fleet.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def wait_idle(fleet: Fleet, deadline: float = 5.0) -> None:
    """Wait until no master holds any bus (a closed client is noticed asynchronously)."""
    end = time.monotonic() + deadline
    while any(getattr(e, "busy", False) for e in fleet._endpoints.values()):
        if time.monotonic() > end:
            raise AssertionError("a bus stayed busy")
        time.sleep(0.005)
