"""Health metrics: per bus, per meter, per schedule; a dict for status messages and ``/metrics``.

Buses are *pulled*: each bus registers a function returning its worker's counters (a mapping with
``transactions``, ``timeouts``, ``checksum_errors``, ``noise_bytes``, ``busy_s``, ``link_up``; the
bus worker's ``BusStats.as_dict()`` plus its codec's noise counters), read at scrape time, so there
is one set of books.  Utilisation is the share of wall time the line was busy over the last
``window_s`` (from successive samples of ``busy_s``).  Meters and collection runs are *pushed*.

Prometheus names (own ``CollectorRegistry``; served on 127.0.0.1 only)::

    taiqu_bus_transactions_total{bus}            taiqu_bus_timeouts_total{bus}
    taiqu_bus_checksum_errors_total{bus}         taiqu_bus_noise_bytes_total{bus}
    taiqu_bus_busy_seconds_total{bus}            taiqu_bus_utilisation_ratio{bus}
    taiqu_bus_link_up{bus}
    taiqu_meter_last_success_timestamp_seconds{meter}   taiqu_meter_consecutive_failures{meter}
    taiqu_collection_success_ratio{schedule,phase}      phase: first_sweep | after_backfill
    taiqu_collection_meters_due{schedule,phase}         taiqu_collection_meters_read{schedule,phase}
    taiqu_gateway_clock_synced
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

BusSource = Callable[[], Mapping[str, Any]]
PHASES = ("first_sweep", "after_backfill")
STATUS_FAILING_LIMIT = 50  # meters listed by name in a status message


@dataclass
class MeterHealth:
    """Last success and the run of failures since."""

    last_success: datetime | None = None
    consecutive_failures: int = 0


@dataclass
class Collection:
    """One schedule's collection result in one phase."""

    due: int = 0
    read: int = 0
    at: datetime | None = None

    @property
    def ratio(self) -> float | None:
        return self.read / self.due if self.due else None


class _Utilisation:
    """Busy share of wall time over a sliding window, from cumulative busy seconds."""

    def __init__(self, window_s: float, monotonic: Callable[[], float]) -> None:
        self.window_s = window_s
        self.monotonic = monotonic
        self.samples: deque[tuple[float, float]] = deque()

    def update(self, busy_s: float) -> float:
        now = self.monotonic()
        self.samples.append((now, busy_s))
        while len(self.samples) > 2 and now - self.samples[1][0] >= self.window_s:
            self.samples.popleft()
        t0, b0 = self.samples[0]
        if now - t0 <= 0:
            return 0.0
        return max(0.0, min(1.0, (busy_s - b0) / (now - t0)))


class GatewayMetrics:
    """The gateway's health books (thread-safe: the HTTP server scrapes from its own thread)."""

    def __init__(
        self,
        *,
        window_s: float = 300.0,
        monotonic: Callable[[], float] = time.monotonic,
        clock_synced: Callable[[], bool] | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self._buses: dict[str, BusSource] = {}
        self._util: dict[str, _Utilisation] = {}
        self._last_util: dict[str, float] = {}
        self.meters: dict[str, MeterHealth] = {}
        self.collections: dict[tuple[str, str], Collection] = {}
        self.window_s = window_s
        self.monotonic = monotonic
        self.clock_synced = clock_synced
        self.registry = CollectorRegistry()
        self.registry.register(_Collector(self))
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    # -- feeding ------------------------------------------------------------------------------
    def add_bus(self, name: str, source: BusSource) -> None:
        """Register a bus whose counters ``source()`` returns (read at every scrape)."""
        with self._lock:
            self._buses[name] = source
            self._util[name] = _Utilisation(self.window_s, self.monotonic)

    def meter_ok(self, meter: str, at: datetime) -> None:
        """A meter answered."""
        with self._lock:
            health = self.meters.setdefault(meter, MeterHealth())
            health.last_success = at
            health.consecutive_failures = 0

    def meter_failed(self, meter: str) -> None:
        """A meter did not answer (after its retries)."""
        with self._lock:
            self.meters.setdefault(meter, MeterHealth()).consecutive_failures += 1

    def forget_meter(self, meter: str) -> None:
        """Drop a meter removed from the archive."""
        with self._lock:
            self.meters.pop(meter, None)

    def collection(self, schedule: str, phase: str, due: int, read: int, at: datetime) -> None:
        """A schedule's collection result: right after its sweep, or after back-fill."""
        if phase not in PHASES:
            raise ValueError(f"phase must be one of {PHASES}, not {phase!r}")
        if not 0 <= read <= due:
            raise ValueError(f"need 0 <= read <= due, got read={read} due={due}")
        with self._lock:
            self.collections[(schedule, phase)] = Collection(due, read, at)

    # -- reading ------------------------------------------------------------------------------
    def bus_snapshot(self) -> dict[str, dict[str, Any]]:
        """Every bus's counters and utilisation now (updates the utilisation window)."""
        with self._lock:
            buses = dict(self._buses)
        out: dict[str, dict[str, Any]] = {}
        for name, source in buses.items():
            stats = dict(source())
            busy = float(stats.get("busy_s", 0.0))
            with self._lock:
                util = self._util[name].update(busy)
            out[name] = {
                "transactions": int(stats.get("transactions", 0)),
                "timeouts": int(stats.get("timeouts", 0)),
                "checksum_errors": int(stats.get("checksum_errors", stats.get("garbled", 0))),
                "noise_bytes": int(stats.get("noise_bytes", 0)),
                "busy_s": round(busy, 3),
                "utilisation": round(util, 4),
                "link_up": bool(stats.get("link_up", True)),
            }
        return out

    def as_dict(self) -> dict[str, Any]:
        """The health section of a status message (bounded in size)."""
        with self._lock:
            meters = dict(self.meters)
            collections = dict(self.collections)
        failing = sorted(
            (m for m, h in meters.items() if h.consecutive_failures),
            key=lambda m: -meters[m].consecutive_failures,
        )
        collection: dict[str, dict[str, Any]] = {}
        for (schedule, phase), c in collections.items():
            collection.setdefault(schedule, {})[phase] = {
                "due": c.due,
                "read": c.read,
                "ratio": None if c.ratio is None else round(c.ratio, 4),
            }
        return {
            "buses": self.bus_snapshot(),
            "meters": {
                "known": len(meters),
                "failing": len(failing),
                "consecutive_failures": {
                    m: meters[m].consecutive_failures for m in failing[:STATUS_FAILING_LIMIT]
                },
            },
            "collection": collection,
        }

    # -- HTTP -----------------------------------------------------------------------------------
    def serve(self, port: int, addr: str = "127.0.0.1") -> int:
        """Serve ``/metrics`` on ``addr:port`` (port 0 picks one); the bound port."""
        if self._server is not None:
            raise RuntimeError("the metrics endpoint is already served")
        self._server, self._thread = start_http_server(port, addr, self.registry)
        return int(self._server.server_port)

    def stop(self) -> None:
        """Stop the endpoint (idempotent)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            if self._thread is not None:
                self._thread.join(timeout=5)
            self._server = self._thread = None


class _Collector(Collector):
    """Renders the books at scrape time."""

    def __init__(self, metrics: GatewayMetrics) -> None:
        self.m = metrics

    def collect(self) -> Iterator[Metric]:
        buses = self.m.bus_snapshot()
        for key, name, help_ in (
            ("transactions", "taiqu_bus_transactions", "Transactions on the bus"),
            ("timeouts", "taiqu_bus_timeouts", "Transactions without a reply"),
            ("checksum_errors", "taiqu_bus_checksum_errors", "Frames dropped for a bad checksum"),
            ("noise_bytes", "taiqu_bus_noise_bytes", "Line-noise bytes skipped"),
            ("busy_s", "taiqu_bus_busy_seconds", "Seconds the line was busy"),
        ):
            counter = CounterMetricFamily(name, help_, labels=["bus"])
            for bus, stats in buses.items():
                counter.add_metric([bus], stats[key])
            yield counter
        util = GaugeMetricFamily(
            "taiqu_bus_utilisation_ratio", "Busy share of the recent window", labels=["bus"]
        )
        up = GaugeMetricFamily("taiqu_bus_link_up", "1 if the bus link is open", labels=["bus"])
        for bus, stats in buses.items():
            util.add_metric([bus], stats["utilisation"])
            up.add_metric([bus], 1.0 if stats["link_up"] else 0.0)
        yield util
        yield up
        with self.m._lock:
            meters = dict(self.m.meters)
            collections = dict(self.m.collections)
        last = GaugeMetricFamily(
            "taiqu_meter_last_success_timestamp_seconds",
            "When the meter last answered (Unix time)",
            labels=["meter"],
        )
        fails = GaugeMetricFamily(
            "taiqu_meter_consecutive_failures",
            "Failed reads since the last success",
            labels=["meter"],
        )
        for meter, health in meters.items():
            if health.last_success is not None:
                last.add_metric([meter], health.last_success.timestamp())
            fails.add_metric([meter], health.consecutive_failures)
        yield last
        yield fails
        labels = ["schedule", "phase"]
        ratio = GaugeMetricFamily(
            "taiqu_collection_success_ratio", "Meters read / meters due", labels=labels
        )
        due = GaugeMetricFamily("taiqu_collection_meters_due", "Meters due", labels=labels)
        read = GaugeMetricFamily("taiqu_collection_meters_read", "Meters read", labels=labels)
        for (schedule, phase), c in collections.items():
            if c.ratio is not None:
                ratio.add_metric([schedule, phase], c.ratio)
            due.add_metric([schedule, phase], c.due)
            read.add_metric([schedule, phase], c.read)
        yield ratio
        yield due
        yield read
        if self.m.clock_synced is not None:
            synced = GaugeMetricFamily(
                "taiqu_gateway_clock_synced", "1 if the gateway trusts its own clock"
            )
            synced.add_metric([], 1.0 if self.m.clock_synced() else 0.0)
            yield synced
