"""The per-bus frame trace: every byte on a bus in hex, switched at run time, rate-limited."""

from __future__ import annotations

import logging
import time


class FrameTrace:
    """Every byte on one bus, both directions, in hex at INFO on ``gateway.trace.<bus>``.

    Off by default; switched at run time (the daemon toggles it on SIGUSR1).  At most
    ``per_second`` lines a second: what is over is counted and said in the next line, so a
    trace left on cannot flood the journal or wear the SD card."""

    def __init__(self, bus: str, per_second: int = 20) -> None:
        self.log = logging.getLogger(f"gateway.trace.{bus}")
        self.on = False
        self.per_second = per_second
        self._window = 0.0
        self._lines = 0
        self.suppressed = 0

    def toggle(self, on: bool | None = None) -> bool:
        self.on = (not self.on) if on is None else on
        self.log.info("frame trace %s", "on" if self.on else "off")
        return self.on

    def frame(self, direction: str, data: bytes) -> None:
        now = time.monotonic()
        if now - self._window >= 1.0:
            self._window, self._lines = now, 0
        self._lines += 1
        if self._lines > self.per_second:
            self.suppressed += 1
            return
        dropped, self.suppressed = self.suppressed, 0
        more = f" ({dropped} lines over the rate limit left out)" if dropped else ""
        self.log.info("%s %s%s", direction, data.hex(" "), more)
