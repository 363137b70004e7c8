"""systemd notification (``sd_notify``) and the watchdog feeder.

``Notifier`` sends ``READY=1``, ``STATUS=…``, ``WATCHDOG=1``, ``STOPPING=1`` as datagrams to
``$NOTIFY_SOCKET`` (a path, or ``@name`` for the abstract namespace); without the variable (not
run by systemd) every call is a no-op.

``Watchdog`` pings ``WATCHDOG=1`` every ``interval`` (half of ``$WATCHDOG_USEC``) only while every
registered task has beaten within ``stale_after`` (``WATCHDOG_USEC``).  A bus task beats once per
loop turn whether its meters answer or not: a cut cable is a health problem reported in the status
message, not a reason for systemd to restart the daemon in a loop; a task that *hangs* stops
beating, the pings stop, and systemd restarts the service (``WatchdogSec=`` in the unit).
Heartbeats use the monotonic clock (the watchdog is about wall time, never the simulated clock).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


class Notifier:
    """Datagrams to systemd's notification socket (no-op without ``NOTIFY_SOCKET``)."""

    def __init__(self, address: str | None = None) -> None:
        self.address = address if address is not None else os.environ.get("NOTIFY_SOCKET")
        self._sock: socket.socket | None = None
        self.failures = 0

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    def notify(self, **fields: str | int) -> bool:
        """Send ``KEY=value`` lines (keys upper-cased); False if not sent."""
        if not self.address:
            return False
        payload = "\n".join(f"{k.upper()}={v}" for k, v in fields.items()).encode()
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto(payload, target)
        except OSError as exc:
            self.failures += 1
            if self.failures == 1:
                log.warning("cannot notify systemd at %s: %s", self.address, exc)
            return False
        return True

    def ready(self, status: str = "running") -> bool:
        return self.notify(ready=1, status=status)

    def status(self, text: str) -> bool:
        return self.notify(status=text)

    def ping(self) -> bool:
        return self.notify(watchdog=1)

    def stopping(self) -> bool:
        return self.notify(stopping=1)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def watchdog_seconds(env: Mapping[str, str] | None = None) -> float | None:
    """``WatchdogSec`` as systemd passes it (``WATCHDOG_USEC``, for this pid); None if off."""
    env = os.environ if env is None else env
    usec = env.get("WATCHDOG_USEC")
    pid = env.get("WATCHDOG_PID")
    if not usec or not usec.isdigit() or int(usec) == 0:
        return None
    if pid and pid.isdigit() and int(pid) != os.getpid():
        return None
    return int(usec) / 1e6


@dataclass
class Heartbeat:
    """One supervised task's proof of life."""

    name: str
    monotonic: Callable[[], float] = time.monotonic
    last: float = field(default=0.0)

    def __post_init__(self) -> None:
        self.last = self.monotonic()

    def beat(self) -> None:
        """Call once per loop turn (whatever the turn's outcome)."""
        self.last = self.monotonic()

    def age(self) -> float:
        return self.monotonic() - self.last


class Watchdog:
    """Feeds systemd's watchdog while every registered heartbeat is fresh."""

    def __init__(
        self,
        notifier: Notifier,
        timeout_s: float,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if timeout_s <= 0:
            raise ValueError("the watchdog timeout must be positive")
        self.notifier = notifier
        self.timeout_s = timeout_s
        self.interval = timeout_s / 2
        self.monotonic = monotonic
        self.heartbeats: dict[str, Heartbeat] = {}
        self.pings = 0
        self.withheld = 0

    def register(self, name: str) -> Heartbeat:
        """A heartbeat for task ``name`` (a bus task, the uplink …)."""
        heartbeat = Heartbeat(name, self.monotonic)
        self.heartbeats[name] = heartbeat
        return heartbeat

    def unregister(self, name: str) -> None:
        self.heartbeats.pop(name, None)

    def stale(self) -> list[str]:
        """Tasks that have not beaten within the watchdog timeout."""
        return sorted(n for n, h in self.heartbeats.items() if h.age() > self.timeout_s)

    def feed(self) -> bool:
        """Ping systemd if every task is alive; True if pinged."""
        stale = self.stale()
        if stale:
            self.withheld += 1
            if self.withheld == 1:
                log.error("watchdog withheld: %s not alive; systemd will restart us", stale)
            return False
        self.withheld = 0
        if self.notifier.ping():
            self.pings += 1
            return True
        return False

    async def run(self) -> None:
        """Feed every ``interval`` seconds until cancelled."""
        while True:
            self.feed()
            await asyncio.sleep(self.interval)


def from_environment(notifier: Notifier | None = None) -> Watchdog | None:
    """The watchdog systemd asked for, or None when it did not (``WatchdogSec`` unset)."""
    seconds = watchdog_seconds()
    if seconds is None:
        return None
    return Watchdog(notifier or Notifier(), seconds)
