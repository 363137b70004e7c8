"""Helpers for simulator tests: a pyserial client, an in-memory link, deadlines."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import termios
import time
from dataclasses import dataclass

import serial

from protocols.dlt645 import NEED_DATA, Master, Request
from simulators.bus import Bus


@dataclass
class Exchange:
    """What a client saw: the decoded reply (or None), raw bytes and elapsed wall time."""

    reply: object
    raw: bytes
    elapsed: float
    request_len: int


def open_port(url: str, baud: int) -> serial.SerialBase:
    """Open like a gateway would (8E1); a pty on kernels that refuse parity flags gets 8N1.

    Some kernels (gVisor sandboxes) reject PARENB on a pseudo-terminal; a pty ignores the
    character format anyway, and the simulated bus times bytes by its own configured format.
    """
    try:
        return serial.serial_for_url(url, baudrate=baud, parity="E", timeout=0.02)
    except termios.error:
        return serial.serial_for_url(url, baudrate=baud, parity="N", timeout=0.02)


def serial_transact(
    url: str, request: Request, baud: int = 2400, wait: float = 1.5, master: Master | None = None
) -> Exchange:
    """Open ``url`` with pyserial, send one DL/T 645 request, read until a reply or ``wait``."""
    master = master or Master()
    port = open_port(url, baud)
    try:
        frame = master.send(request)
        start = time.monotonic()
        port.write(frame)
        raw = b""
        last = start
        while time.monotonic() - start < wait:
            chunk = port.read(256)
            if chunk:
                raw += chunk
                last = time.monotonic()
                master.receive_data(chunk)
                event = master.next_event()
                if event is not NEED_DATA:
                    return Exchange(event, raw, last - start, len(frame))
        return Exchange(None, raw, last - start, len(frame))
    finally:
        port.close()


class MemoryLink:
    """An in-memory master side for ``Bus.serve`` (no sockets)."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[bytes] = asyncio.Queue()
        self.received = bytearray()
        self.changed = asyncio.Event()

    async def read(self) -> bytes:
        return await self.inbox.get()

    async def write(self, data: bytes) -> None:
        self.received += data
        self.changed.set()


class BusHarness:
    """A bus served over a MemoryLink in a task, and a DL/T 645 master talking to it."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.link = MemoryLink()
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> BusHarness:
        self.task = asyncio.create_task(self.bus.serve(self.link))
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.task is not None
        self.link.inbox.put_nowait(b"")
        await asyncio.wait_for(self.task, 5)

    async def ask(self, frame: bytes, deadline: float = 5.0) -> bytes:
        """Send ``frame``; return every byte the bus wrote back for it."""
        self.link.received.clear()
        done = self.bus.transactions + 1
        self.link.inbox.put_nowait(frame)
        await wait_for(lambda: self.bus.transactions >= done, deadline)
        return bytes(self.link.received)


async def wait_for(predicate, deadline: float = 5.0, step: float = 0.01) -> None:  # type: ignore[no-untyped-def]
    """Wait until ``predicate()`` is true, failing after ``deadline`` seconds."""
    end = time.monotonic() + deadline
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError("condition not met before the deadline")
        await asyncio.sleep(step)


def stop_serving(proc: subprocess.Popen[str], timeout: float = 30) -> None:
    """Interrupt a ``taiqu sim serve`` and wait for it (Ctrl-C twice if the first is not
    enough: a loaded make test saw the first go unanswered); if it does not end, fail with every
    thread's stack (SIGUSR1: ``faulthandler``) instead of leaving it running."""
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=timeout / 3)
        return
    except subprocess.TimeoutExpired:
        pass
    proc.send_signal(signal.SIGINT)  # as an operator would press Ctrl-C again
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGUSR1)
        time.sleep(1)
        proc.kill()
        _, err = proc.communicate(timeout=10)
        raise AssertionError(f"sim serve did not stop on SIGINT; its threads:\n{err}") from None
