"""Periodic search for meters on a bus that the archive does not know (搜表, opt-in).

``[search]`` in gateway.toml: ``enabled`` (false), ``at`` ("03:30": off-peak, local time),
``max_seconds`` (600: bus time per bus and run; what is left is done the next night) and
``step`` ("digit" or "byte", see ``gateway.field.search``).  Each bus is searched through its
bus worker at back-fill priority, so sweeps and commands always go first; every DL/T 645-2007
meter that answers and is not in the archive of that bus is reported once a run as an
``unregistered_meter`` event (meter = its address; details: bus, protocol, line), which the
head-end lists with the gateway that found it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from gateway.bus.worker import BusWorker, Priority
from gateway.config.models import MeterConfig, SearchConfig
from gateway.field.search import hear, narrow, search_request
from protocols.dlt645 import WILDCARD, Version
from protocols.model import Event, EventType
from taiqu.clock import Clock

log = logging.getLogger("gateway.search")
REPLY_LEN = 4 + 12 + 4 + 6  # preamble, frame overhead, DI, a 6-byte address


@dataclass
class Listen:
    """One wildcard request; the worker hands back every byte heard in its window."""

    request: bytes
    reply_len: int = REPLY_LEN
    expects_reply: bool = True
    listens: bool = True
    rx: bytearray = field(default_factory=bytearray)

    def feed(self, data: bytes) -> Any | None:
        self.rx += data
        return bytes(self.rx) if not data else None  # b"": the window is over


def _listener(request: bytes) -> Callable[[], Listen]:
    return lambda: Listen(request)


@dataclass
class SearchRun:
    """What one run found on one bus."""

    bus: str
    found: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    probes: int = 0
    finished: bool = True


async def search_bus(
    worker: BusWorker,
    known: set[str],
    max_seconds: float,
    step: str = "digit",
) -> SearchRun:
    """Search ``worker``'s bus for DL/T 645-2007 meters within ``max_seconds`` of its time."""
    run = SearchRun(worker.name)
    found: dict[str, None] = {}
    pending = [WILDCARD]
    deadline = time.monotonic() + max_seconds
    while pending:
        if time.monotonic() >= deadline:
            run.finished = False
            break
        pattern = pending.pop()
        listen = _listener(search_request(pattern, Version.V2007))
        rx = await worker.transact(listen, Priority.BACKFILL)
        run.probes += 1
        heard = hear(pattern, rx or b"", Version.V2007)
        found.update(dict.fromkeys(heard.addresses))
        if heard.collision:
            pending.extend(reversed(narrow(pattern, step)))
    run.found = sorted(found)
    run.unknown = [a for a in run.found if a not in known]
    return run


def unregistered_events(run: SearchRun, clock: Clock) -> list[Event]:
    """One ``unregistered_meter`` event per unknown meter of ``run``."""
    now = clock.now()
    return [
        Event(
            meter=address,
            type=EventType.UNREGISTERED_METER,
            start=now,
            detected=now,
            details={"bus": run.bus, "protocol": "dlt645-2007", "address": address},
        )
        for address in run.unknown
    ]


async def search_all(
    workers: dict[str, BusWorker],
    meters: Iterable[MeterConfig],
    settings: SearchConfig,
    clock: Clock,
    sink: Any,
) -> list[SearchRun]:
    """Search every bus in turn; unknown meters go to ``sink`` as events."""
    meters = list(meters)
    runs = []
    for name, worker in workers.items():
        known = {m.address for m in meters if m.bus == name and m.protocol.startswith("dlt645")}
        run = await search_bus(worker, known, settings.max_seconds, settings.step)
        log.info(
            "bus %s: search found %d meters, %d not in the archive%s",
            name,
            len(run.found),
            len(run.unknown),
            "" if run.finished else " (unfinished: bus time used up)",
        )
        events = unregistered_events(run, clock)
        if events and sink is not None:
            sink.append_events(events)
        runs.append(run)
    return runs
