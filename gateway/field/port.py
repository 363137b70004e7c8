"""One port for the field tools: open it with a clear error, time transactions, listen.

Exit codes of ``taiqu field`` (documented in docs/field.md)::

    0  every request answered          4  the port is busy (another program holds it)
    1  no answer (or nothing found)    5  no such device
    2  usage error                     6  permission denied (dialout group)
    3  the meter refused (abnormal     7  any other port error
       reply, Modbus exception)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from gateway.bus.link import Line, LinkSettings, SerialLink
from gateway.errors import LinkError

T = TypeVar("T")

OK, NO_ANSWER, USAGE, REFUSED, BUSY, NO_DEVICE, PERMISSION, PORT_ERROR = range(8)


class FieldError(Exception):
    """A failure the CLI reports in one line and exits with ``code``."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def port_error_code(exc: BaseException) -> int:
    """The exit code of a port error (``LinkError`` carries the OS error as its cause)."""
    cause = exc.__cause__ or exc
    errno = getattr(cause, "errno", None)
    text = f"{exc} {cause}"
    if isinstance(cause, BlockingIOError) or errno == 11 or "exclusively lock" in text:
        return BUSY
    if errno == 2 or "No such file" in text:
        return NO_DEVICE
    if errno == 13 or "Permission denied" in text:
        return PERMISSION
    return PORT_ERROR


@dataclass(frozen=True, slots=True)
class Exchange:
    """One request and what came back: bytes, and seconds from write to the last byte read."""

    tx: bytes
    rx: bytes
    rtt: float | None  # None: nothing came back


Done = Callable[[bytes], bool]
GAP = 10  # characters of silence that end a reply once the window is over
LINGER = 0.5  # seconds of silence that end an unfinished reply (DL/T 645: inter-byte ≤ 500 ms)


class Port:
    """A ``SerialLink`` owned by one command (a device path, ``socket://`` or ``rfc2217://``)."""

    def __init__(self, url: str, line: Line) -> None:
        self.url = url
        self.line = line
        self._link = SerialLink(
            LinkSettings(url, line.baud, line.parity, line.bytesize, line.stopbits)
        )
        self.tx_bytes = 0
        self.rx_bytes = 0

    def __enter__(self) -> Port:
        try:
            self._link.open()
        except LinkError as exc:
            raise FieldError(str(exc), port_error_code(exc)) from exc
        return self

    def __exit__(self, *_: object) -> None:
        self._link.close()

    def configure(self, line: Line) -> None:
        """Switch the port (over ``rfc2217://`` the remote UART follows; ``socket://`` cannot)."""
        if line == self.line:
            return
        self._guard(self._link.configure, line)
        self.line = line

    def wire_time(self, nbytes: int) -> float:
        """Seconds ``nbytes`` take on the line at the current settings."""
        return nbytes * self.line.bits_per_char / self.line.baud

    def transact(
        self,
        frame: bytes,
        timeout: float,
        done: Done | None = None,
        settled: Done | None = None,
    ) -> Exchange:
        """Send ``frame``; read until ``done(rx)`` or ``timeout`` after the frame left the port.

        Without ``done`` every byte within the window is collected (several meters may answer
        a wildcard, the last up to the window's end).  A reply still arriving when the window
        ends is waited for: until a pause of ``GAP`` characters (at least 50 ms) if
        ``settled(rx)`` says it is whole (or no ``settled`` is given and no ``done``), else until
        a pause of ``LINGER`` (the standard allows 500 ms between a frame's bytes; at most
        the window itself).
        """
        for _ in range(64):  # drop late replies and noise (locally: a purge over rfc2217://
            if not self._guard(self._link.read, 0.0):  # waits for the server's ack, 50 ms)
                break
        start = time.monotonic()
        self._guard(self._link.write, frame)
        self.tx_bytes += len(frame)
        deadline = start + self.wire_time(len(frame)) + timeout
        gap = max(0.05, GAP * self.wire_time(1))
        linger = max(gap, min(LINGER, timeout))
        rx = bytearray()
        last = 0.0
        while True:
            now = time.monotonic()
            if now >= deadline:
                if not rx:
                    break
                quiet = now - last
                whole = done is None and (settled is None or settled(bytes(rx)))
                if quiet > linger or (whole and quiet > gap):
                    break
                deadline = now + 0.01
            wait = min(0.02, max(0.0, deadline - now))
            chunk = self._guard(self._link.read, wait)
            if chunk:
                rx += chunk
                last = time.monotonic()
                if done is not None and done(bytes(rx)):
                    break
        self.rx_bytes += len(rx)
        return Exchange(frame, bytes(rx), (last - start) if rx else None)

    def listen(self, until: float | None = None) -> Iterator[tuple[float, bytes]]:
        """Passive: (wall time, bytes) as they arrive (``b""`` each idle 50 ms) until ``until``."""
        while until is None or time.monotonic() < until:
            chunk = self._guard(self._link.read, 0.05)
            if chunk:
                self.rx_bytes += len(chunk)
                yield time.time(), chunk
            else:
                yield time.time(), b""

    def _guard(self, call: Callable[..., T], *args: Any) -> T:
        try:
            return call(*args)
        except LinkError as exc:
            raise FieldError(str(exc), port_error_code(exc)) from exc
