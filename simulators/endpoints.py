"""Where a gateway plugs into a simulated bus, as it would into hardware.

- ``TcpEndpoint``: an asyncio TCP server that pyserial opens as ``socket://host:port`` (like a
  serial-device server).  One client at a time, like one adapter on one line: a second client is
  refused (closed at once) while the first is connected.
- ``PtyEndpoint``: a pseudo-terminal pair in raw mode; pyserial opens the printed slave path
  (``/dev/pts/N``) like a USB RS-485 adapter.  We keep the slave end open ourselves so a client
  closing it does not hang up the line.
- ``Rfc2217Endpoint`` (``simulators.rfc2217``): TCP with RFC 2217 (Telnet COM-PORT-OPTION), as
  an Ethernet serial server speaks it; the client's baud rate and character format reach the bus.

A bus's endpoints share one ``Gate``: one master at a time on the line.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import termios
import tty
from collections.abc import Awaitable, Callable

from simulators.bus import Link
from simulators.errors import EndpointError

Serve = Callable[[Link], Awaitable[None]]


def listen_failed(what: str, host: str, port: int, exc: OSError) -> EndpointError:
    """The error for a listener that could not bind, naming the endpoint and the way out."""
    reason = exc.strerror or str(exc)
    hint = ""
    if exc.errno == errno.EADDRINUSE:
        hint = (
            f"; another program (perhaps another `taiqu sim serve`) listens on port {port}: "
            "stop it, or choose another port (port 0 picks a free one)"
        )
    return EndpointError(f"cannot open {what} on {host}:{port}: {reason}{hint}")


class _StreamLink:
    """A TCP connection as a bus link."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    async def read(self) -> bytes:
        try:
            return await self._reader.read(4096)
        except (ConnectionError, OSError):
            return b""

    async def write(self, data: bytes) -> None:
        try:
            self._writer.write(data)
            await self._writer.drain()
        except (ConnectionError, OSError):
            pass


class Gate:
    """One master at a time per bus, whichever endpoint it comes through."""

    def __init__(self) -> None:
        self.busy = False


class TcpEndpoint:
    """A TCP listener feeding one bus (``socket://host:port`` for pyserial)."""

    def __init__(
        self,
        serve: Serve,
        host: str = "127.0.0.1",
        port: int = 0,
        name: str = "",
        *,
        gate: Gate | None = None,
    ) -> None:
        self._serve = serve
        self.name = name
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None
        self._gate = gate or Gate()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def busy(self) -> bool:
        """Whether a master holds the bus (through this or another endpoint of it)."""
        return self._gate.busy

    def _link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Link:
        """The bus link of one connection (a subclass may speak a protocol on it)."""
        return _StreamLink(reader, writer)

    @property
    def url(self) -> str:
        """What pyserial opens."""
        return f"socket://{self.host}:{self.port}"

    async def start(self) -> None:
        """Listen (port 0 picks a free port, shown in ``url`` after start)."""
        try:
            self._server = await asyncio.start_server(self._client, self.host, self.port)
        except OSError as exc:
            what = f"the endpoint of bus {self.name!r}" if self.name else "a bus endpoint"
            raise listen_failed(what, self.host, self.port, exc) from exc
        self.port = self._server.sockets[0].getsockname()[1]

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._gate.busy:
            writer.close()
            return
        self._gate.busy = True
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await self._serve(self._link(reader, writer))
        finally:
            self._gate.busy = False
            if task is not None:
                self._tasks.discard(task)
            writer.close()

    async def stop(self) -> None:
        """Stop listening and drop the client."""
        if self._server is not None:
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None


class _PtyLink:
    """The master side of a pty as a bus link."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._queue: asyncio.Queue[bytes] = asyncio.Queue()
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(fd, self._readable)

    def _readable(self) -> None:
        try:
            data = os.read(self._fd, 4096)
        except BlockingIOError:
            return
        except OSError:  # the slave end went away
            data = b""
        if not data:
            self._loop.remove_reader(self._fd)
        self._queue.put_nowait(data)

    async def read(self) -> bytes:
        return await self._queue.get()

    async def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                written = os.write(self._fd, view)
            except BlockingIOError:
                await asyncio.sleep(0.001)
                continue
            except OSError:
                return
            view = view[written:]

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._loop.remove_reader(self._fd)


class PtyEndpoint:
    """A pseudo-terminal feeding one bus (open ``path`` with pyserial)."""

    def __init__(self, serve: Serve) -> None:
        self._serve = serve
        self._master = -1
        self._slave = -1
        self.path = ""
        self._task: asyncio.Task[None] | None = None
        self._link: _PtyLink | None = None

    @property
    def url(self) -> str:
        """What pyserial opens."""
        return self.path

    async def start(self) -> None:
        """Open the pair in raw mode and serve the bus on the master side."""
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave, termios.TCSANOW)
        attrs = termios.tcgetattr(self._slave)
        attrs[3] &= ~termios.ECHO
        termios.tcsetattr(self._slave, termios.TCSANOW, attrs)
        os.set_blocking(self._master, False)
        self.path = os.ttyname(self._slave)
        self._link = _PtyLink(self._master)
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        assert self._link is not None
        await self._serve(self._link)

    async def stop(self) -> None:
        """Stop serving and close both ends."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        if self._link is not None:
            self._link.close()
        for fd in (self._master, self._slave):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = -1


class TapEndpoint:
    """A listen-only TCP copy of all bus traffic, both directions (a sniffer on the wires).

    Any number of clients; what they send is ignored, and a client that does not keep up
    (more than ``MAX_BACKLOG`` bytes unsent) is dropped rather than slowing the bus.
    """

    MAX_BACKLOG = 1 << 20

    def __init__(self, host: str = "127.0.0.1", port: int = 0, name: str = "") -> None:
        self.host = host
        self.port = port
        self.name = name
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.StreamWriter] = set()

    @property
    def clients(self) -> int:
        """Sniffers connected now."""
        return len(self._clients)

    @property
    def url(self) -> str:
        """What pyserial (or ``taiqu field monitor``) opens."""
        return f"socket://{self.host}:{self.port}"

    async def start(self) -> None:
        """Listen (port 0 picks a free port)."""
        try:
            self._server = await asyncio.start_server(self._client, self.host, self.port)
        except OSError as exc:
            raise listen_failed(f"the tap of bus {self.name!r}", self.host, self.port, exc) from exc
        self.port = self._server.sockets[0].getsockname()[1]

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._clients.add(writer)
        try:
            while await reader.read(4096):
                pass  # a sniffer does not talk
        except (ConnectionError, OSError):
            pass
        finally:
            self._clients.discard(writer)
            writer.close()

    def feed(self, data: bytes) -> None:
        """Copy bytes that crossed the line to every client."""
        for writer in list(self._clients):
            if writer.transport.get_write_buffer_size() > self.MAX_BACKLOG:
                self._clients.discard(writer)
                writer.close()
                continue
            writer.write(data)

    async def stop(self) -> None:
        """Stop listening and drop every client."""
        for writer in list(self._clients):
            writer.close()
        self._clients.clear()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None
