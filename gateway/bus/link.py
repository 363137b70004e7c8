"""Links: the byte pipes under a bus (a serial device, a pty, or ``socket://host:port``).

``SerialLink`` is the one place that opens pyserial (``serial.serial_for_url``) and translates
``SerialException`` / ``OSError`` into ``LinkError``.  ``MemoryLink`` is an in-memory transport
with a scripted responder, for unit tests (like httpx's ``MockTransport``).

Links are blocking and owned by exactly one bus worker thread: nothing else touches them.

Exceptions::

    gateway.errors.LinkError   the port cannot be opened, was lost, or an I/O call failed
"""

from __future__ import annotations

import io
import logging
import re
import select
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from gateway.errors import LinkError

log = logging.getLogger(__name__)

try:  # termios.error is no OSError: an unplugged adapter raises it from tcflush / tcsetattr
    import termios

    _TTY_ERRORS: tuple[type[BaseException], ...] = (termios.error,)
except ImportError:  # pragma: no cover - not a POSIX system
    _TTY_ERRORS = ()

__all__ = [
    "Line",
    "Link",
    "LinkError",
    "LinkSettings",
    "MemoryLink",
    "SerialLink",
    "open_serial",
]


STANDARD_BAUDS = (300, 600, 1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)
_LINE = re.compile(r"^\s*(\d{3,6})\s*[ ,/-]?\s*([78])([NEO])([12])\s*$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Line:
    """Line settings of one meter: baud, data bits, parity, stop bits (``"2400 8E1"``)."""

    baud: int = 2400
    parity: str = "E"
    bytesize: int = 8
    stopbits: int = 1

    @classmethod
    def parse(cls, text: str) -> Line:
        """``"1200 8E1"`` → Line; ``ValueError`` naming the expected form."""
        match = _LINE.match(text)
        if not match or int(match[1]) not in STANDARD_BAUDS:
            raise ValueError(
                f'{text!r} is not a line setting: write baud and frame, e.g. "2400 8E1" or '
                f'"9600 8N1" (baud one of {STANDARD_BAUDS})'
            )
        return cls(int(match[1]), match[3].upper(), int(match[2]), int(match[4]))

    @property
    def bits_per_char(self) -> int:
        """Start bit + data bits + parity bit + stop bits (11 for 8E1)."""
        return 1 + self.bytesize + (0 if self.parity == "N" else 1) + self.stopbits

    def __str__(self) -> str:
        return f"{self.baud} {self.bytesize}{self.parity}{self.stopbits}"


@dataclass(frozen=True, slots=True)
class LinkSettings:
    """What a link is opened with."""

    url: str
    baud: int = 2400
    parity: str = "E"
    bytesize: int = 8
    stopbits: int = 1
    rs485: bool = False

    @property
    def line(self) -> Line:
        """The line settings the port opens with (the bus's default)."""
        return Line(self.baud, self.parity, self.bytesize, self.stopbits)


class Link(Protocol):
    """A blocking byte pipe owned by one bus worker."""

    name: str

    def open(self) -> None:
        """Open the port; ``LinkError`` if it cannot be opened."""
        ...

    def close(self) -> None:
        """Close the port (never raises)."""
        ...

    def write(self, data: bytes) -> None:
        """Send ``data``."""
        ...

    def read(self, timeout: float) -> bytes:
        """Whatever arrives within ``timeout`` seconds (at least one byte), or ``b""``."""
        ...

    def discard_input(self) -> None:
        """Drop bytes received so far (late replies, line noise)."""
        ...

    def configure(self, line: Line) -> None:
        """Switch the open port to ``line`` (per-meter settings; RFC 2217 tells the server)."""
        ...


LinkFactory = Callable[[LinkSettings], Link]


class SerialLink:
    """A pyserial port: ``/dev/ttyUSB0``, a pty such as ``/dev/pts/5``, or ``socket://h:p``."""

    def __init__(self, settings: LinkSettings) -> None:
        self.settings = settings
        self.name = settings.url
        self._port: Any = None
        self._line = settings.line  # what the port is (or will be opened) at
        self.rs485_refused = ""  # the adapter's refusal of kernel RS-485 mode, once seen

    def open(self) -> None:
        import serial

        s = self.settings
        device = "://" not in s.url
        rs485 = s.rs485 and device and not self.rs485_refused
        try:
            try:
                port = self._open(rs485)
            except (serial.SerialException, OSError, ValueError) as exc:
                if not rs485 or "RS485" not in str(exc).upper():
                    raise
                # most USB adapters switch direction themselves and refuse the kernel's RS-485
                # mode: say so once and go on without it, instead of failing every second
                self.rs485_refused = str(exc)
                log.error(
                    "%s: the adapter refuses kernel RS-485 mode (%s); running without it: "
                    "set rs485 = false for this bus (USB RS-485 adapters drive the line "
                    "direction themselves)",
                    s.url,
                    exc,
                )
                port = self._open(False)
        except (serial.SerialException, OSError, ValueError, *_TTY_ERRORS) as exc:
            raise LinkError(f"cannot open {s.url}: {_explain(exc)}") from exc
        self._port = port

    def _open(self, rs485: bool) -> Any:
        import serial

        line = self._line
        url = self.settings.url
        port = serial.serial_for_url(
            url,
            baudrate=line.baud,
            parity=line.parity,
            bytesize=line.bytesize,
            stopbits=line.stopbits,
            timeout=0,
            do_not_open=True,
        )
        if url.startswith("rfc2217://"):
            # no write timeout in pyserial's RFC 2217 client, and setting the read timeout later
            # re-sends every line setting to the server (~100 ms): poll with a short one instead
            port.timeout = 0.005
        else:
            port.write_timeout = 5
        if "://" not in self.settings.url:  # one owner: another gateway or a terminal fails
            port.exclusive = True
        if rs485:
            from serial.rs485 import RS485Settings

            port.rs485_mode = RS485Settings()
        port.open()
        return port

    def _serial(self) -> Any:
        if self._port is None:
            raise LinkError(f"{self.name} is not open")
        return self._port

    def close(self) -> None:
        port, self._port = self._port, None
        if port is not None:
            try:
                port.close()
            except Exception:  # closing a lost port may fail; it is gone either way
                pass

    def write(self, data: bytes) -> None:
        import serial

        port = self._serial()
        try:
            port.write(data)
        except (serial.SerialException, OSError, *_TTY_ERRORS) as exc:
            raise LinkError(f"{self.name}: write failed: {exc}") from exc

    def read(self, timeout: float) -> bytes:
        import serial

        port = self._serial()
        try:
            try:
                fd = port.fileno()
            except (AttributeError, NotImplementedError, io.UnsupportedOperation):
                fd = None  # rfc2217:// reads through its own thread: wait with the timeout
            if fd is None:  # the port reads with a short timeout (set at open): poll it
                end = time.monotonic() + max(0.0, timeout)
                while True:  # what is there at once; else wait for a byte (a full-size read
                    got: bytes = port.read(port.in_waiting or 1)  # waits out its timeout)
                    if got and (more := port.in_waiting):
                        got += port.read(more)
                    if got or time.monotonic() >= end:
                        return got
            ready, _, _ = select.select([fd], [], [], max(0.0, timeout))
            if not ready:
                return b""
            data: bytes = port.read(4096)
        except (serial.SerialException, OSError, ValueError, *_TTY_ERRORS) as exc:
            raise LinkError(f"{self.name}: read failed: {exc}") from exc
        return data

    def configure(self, line: Line) -> None:
        import serial

        self._line = line
        port = self._port
        if port is None:
            return
        try:  # only what changes: each assignment is a round trip over rfc2217:// (~0.1 s)
            for name, value in (
                ("baudrate", line.baud),
                ("parity", line.parity),
                ("bytesize", line.bytesize),
                ("stopbits", line.stopbits),
            ):
                if getattr(port, name) != value:
                    setattr(port, name, value)
        except (serial.SerialException, OSError, ValueError, *_TTY_ERRORS) as exc:
            raise LinkError(f"{self.name}: cannot switch to {line}: {exc}") from exc

    def discard_input(self) -> None:
        import serial

        port = self._serial()
        try:
            if self.settings.url.startswith("rfc2217://"):
                # pyserial's purge over RFC 2217 waits for the server's acknowledgement in 50 ms
                # sleeps: more than a whole transaction at 9600 baud.  Stale bytes are in the
                # client's own buffer already: drop those (no round trip)
                while waiting := port.in_waiting:
                    port.read(waiting)
            else:
                port.reset_input_buffer()
        except (serial.SerialException, OSError, *_TTY_ERRORS) as exc:
            raise LinkError(f"{self.name}: flush failed: {exc}") from exc


def _explain(exc: BaseException) -> str:
    """A port error with the likely fix (busy, missing, permissions)."""
    text = str(exc)
    errno = getattr(exc, "errno", None)
    if isinstance(exc, BlockingIOError) or errno == 11 or "Could not exclusively lock" in text:
        return f"{text}: the port is in use by another program (another gateway, minicom…)"
    if errno == 2 or "No such file" in text:
        return f"{text}: no such device: is the adapter plugged in? (see /dev/serial/by-path)"
    if errno == 13 or "Permission denied" in text:
        return f"{text}: permission denied: add the service user to the dialout group"
    return text


def open_serial(settings: LinkSettings) -> Link:
    """The default link factory."""
    return SerialLink(settings)


Responder = Callable[[bytes], "bytes | None"]


@dataclass
class MemoryLink:
    """An in-memory link: each write is answered by ``responder`` after ``delay`` seconds.

    ``responder`` returns the reply bytes, or ``None`` for silence.  ``noise`` is delivered
    with the next read (as line noise would be).  ``fail`` makes every I/O call raise.
    """

    responder: Responder
    delay: float = 0.0
    name: str = "memory://"
    fail: bool = False
    noise: bytes = b""
    written: list[bytes] = field(default_factory=list)
    lines: list[Line] = field(default_factory=list)  # every switch asked for
    is_open: bool = False
    _pending: bytearray = field(default_factory=bytearray)
    _ready_at: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _check(self) -> None:
        if self.fail:
            raise LinkError(f"{self.name}: link lost")
        if not self.is_open:
            raise LinkError(f"{self.name} is not open")

    def open(self) -> None:
        if self.fail:
            raise LinkError(f"cannot open {self.name}: no such device")
        self.is_open = True

    def close(self) -> None:
        self.is_open = False

    def write(self, data: bytes) -> None:
        self._check()
        self.written.append(bytes(data))
        reply = self.responder(bytes(data))
        with self._lock:
            if self.noise:
                self._pending += self.noise
                self.noise = b""
            if reply:
                self._pending += reply
            self._ready_at = time.monotonic() + self.delay

    def read(self, timeout: float) -> bytes:
        self._check()
        with self._lock:
            has, ready_at = bool(self._pending), self._ready_at
        wait = ready_at - time.monotonic()
        if not has or wait > timeout:
            time.sleep(max(0.0, timeout))
            return b""
        time.sleep(max(0.0, wait))
        with self._lock:
            out = bytes(self._pending)
            self._pending.clear()
        return out

    def discard_input(self) -> None:
        self._check()
        with self._lock:
            self._pending.clear()

    def configure(self, line: Line) -> None:
        self._check()
        self.lines.append(line)
