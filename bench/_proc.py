"""CPU time of processes from /proc (benchmarks count the ingest, broker and PostgreSQL apart)."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def children(parent: int) -> list[int]:
    """The pids whose parent is ``parent``."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == parent:
                out.append(int(entry.name))
    return out


class PgCpu:
    """CPU of one PostgreSQL instance: the postmaster and every backend (sampled, as they come).

    A backend's CPU is kept at the highest value seen, so sample often enough to see short-lived
    backends before they exit (and once more right before the one measured closes).
    """

    def __init__(self, url: str) -> None:
        port = url.rsplit(":", 1)[1].split("/")[0]
        self.postmaster = 0
        for pid in Path("/proc").iterdir():
            if pid.name.isdigit():
                try:
                    cmd = (pid / "cmdline").read_bytes().split(b"\0")
                except OSError:
                    continue
                args = b" ".join(cmd).split()
                pairs = itertools.pairwise(args)
                if cmd[0].endswith(b"postgres") and (b"-p", port.encode()) in set(pairs):
                    self.postmaster = int(pid.name)  # exactly this port: other instances run too
        self.seen: dict[int, float] = {}

    def sample(self) -> float:
        for pid in [self.postmaster, *children(self.postmaster)]:
            self.seen[pid] = max(self.seen.get(pid, 0.0), cpu_seconds(pid))
        return sum(self.seen.values())


def load() -> str:
    """The 1- and 5-minute load averages, for the record."""
    one, five, _ = os.getloadavg()
    return f"load {one:.1f}/{five:.1f}"
