"""The health section of the gateway's status message: buses, meters, sweeps, process.

The per-bus line quality, per-meter books and collection ratios come from
``gateway.daemon.metrics.GatewayMetrics`` (the same figures ``/metrics`` serves), merged over the
poller's own counters.
"""

from __future__ import annotations

import dataclasses
import os
import resource
import time
from dataclasses import dataclass, field
from typing import Any

from gateway.daemon.metrics import GatewayMetrics
from gateway.polling import Poller, SweepReport


@dataclass
class Health:
    """Collects what the status message reports."""

    poller: Poller
    metrics: GatewayMetrics | None = None
    clock_synced: Any = None  # () -> bool
    started: float = field(default_factory=time.monotonic)
    last_sweeps: dict[str, dict[str, Any]] = field(default_factory=dict)
    frozen: dict[str, Any] = field(default_factory=dict)
    history: dict[str, dict[str, Any]] = field(default_factory=dict)  # load_profile, settlement
    archive_version: int = 0

    def sweep_done(self, report: SweepReport) -> None:
        """Remember the latest sweep of each group."""
        self.last_sweeps[report.group] = {
            "at": report.started.isoformat(),
            "read": report.read,
            "failed": report.failed,
            "empty": report.empty,
            "skipped": report.skipped,
            "seconds": round(report.seconds, 3),
        }

    def snapshot(self, store_stats: Any = None) -> dict[str, Any]:
        """A JSON-able dict for ``Status.health``."""
        usage = resource.getrusage(resource.RUSAGE_SELF)
        out: dict[str, Any] = {
            **self.poller.health(),
            "sweeps": dict(self.last_sweeps),
            "frozen": dict(self.frozen),
            "history": dict(self.history),
            "archive_version": self.archive_version,
            "uptime_s": round(time.monotonic() - self.started),
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
            "rss_kb": usage.ru_maxrss,
            "pid": os.getpid(),
        }
        if self.clock_synced is not None:
            out["clock_synced"] = bool(self.clock_synced())
        if self.metrics is not None:
            books = self.metrics.as_dict()
            buses = out.get("buses", {})
            for name, figures in books["buses"].items():
                buses[name] = {**buses.get(name, {}), **figures}
            out["meter_health"] = books["meters"]
            out["collection"] = books["collection"]
        if store_stats is not None:
            stats = (
                dataclasses.asdict(store_stats)
                if dataclasses.is_dataclass(store_stats) and not isinstance(store_stats, type)
                else getattr(store_stats, "__dict__", None) or {}
            )
            out["store"] = {k: v for k, v in stats.items() if isinstance(v, int | float | str)}
        return out


def software_version() -> str:
    """The installed taiqu version (reported in the status message)."""
    try:
        from importlib.metadata import version

        return version("taiqu")
    except Exception:
        return "0+unknown"
