"""A bus served over RFC 2217 (Telnet COM-PORT-OPTION), as an Ethernet serial server serves it.

pyserial ships both sides: a gateway opens ``rfc2217://host:port`` with ``serial_for_url`` and
its baud rate, data bits, parity and stop bits travel to the server as COM-PORT-OPTION
subnegotiations (SET-BAUDRATE, SET-DATASIZE, SET-PARITY, SET-STOPSIZE), each acknowledged with
the value in force.  The server side is ``serial.rfc2217.PortManager``: it filters the Telnet
stream (IAC commands out, data bytes through), applies settings to a serial-port object and
escapes outgoing data (IAC doubled).  Here its "serial port" is ``_LinePort``: setting its baud
rate or format switches the bus's master line (``Bus.set_master_line``), so a meter at other
settings hears noise (``simulators.line``).  Flow control, modem lines and break are accepted
and ignored (an RS-485 line has none).  1.5 stop bits count as 2.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from serial.rfc2217 import PortManager

from simulators.bus import Link
from simulators.endpoints import Gate, Serve, TcpEndpoint
from simulators.line import LineSettings

OnLine = Callable[[LineSettings], None]


class _LinePort:
    """The serial-port object ``PortManager`` drives: line settings in, modem lines constant."""

    xonxoff = False
    rtscts = False
    break_condition = False
    dtr = True
    rts = True
    cts = True
    dsr = True
    ri = False
    cd = True

    def __init__(self, line: LineSettings, on_line: OnLine) -> None:
        self._line = line
        self._on_line = on_line

    def _set(self, **changes: object) -> None:
        fields = {
            "baud": self._line.baud,
            "parity": self._line.parity,
            "bytesize": self._line.bytesize,
            "stopbits": self._line.stopbits,
        }
        fields.update(changes)
        self._line = LineSettings(**fields)  # type: ignore[arg-type]
        self._on_line(self._line)

    @property
    def baudrate(self) -> int:
        return self._line.baud

    @baudrate.setter
    def baudrate(self, value: int) -> None:
        if value <= 0:
            raise ValueError("baud rate must be positive")  # PortManager restores the old one
        self._set(baud=int(value))

    @property
    def bytesize(self) -> int:
        return self._line.bytesize

    @bytesize.setter
    def bytesize(self, value: int) -> None:
        self._set(bytesize=int(value))

    @property
    def parity(self) -> str:
        return self._line.parity

    @parity.setter
    def parity(self, value: str) -> None:
        self._set(parity=str(value))

    @property
    def stopbits(self) -> float:
        return self._line.stopbits

    @stopbits.setter
    def stopbits(self, value: float) -> None:
        self._set(stopbits=1 if value == 1 else 2)

    def reset_input_buffer(self) -> None:
        """Nothing is buffered on the simulated line."""

    def reset_output_buffer(self) -> None:
        """Nothing is buffered on the simulated line."""


class _Network:
    """The connection ``PortManager`` answers on (a synchronous write)."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer

    def write(self, data: bytes) -> None:
        try:
            self._writer.write(data)
        except (ConnectionError, OSError, RuntimeError):
            pass


class _Rfc2217Link:
    """One RFC 2217 client as a bus link: Telnet filtered out, data bytes through."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, port: _LinePort
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._manager = PortManager(port, _Network(writer))  # sends its option requests

    async def read(self) -> bytes:
        while True:
            try:
                data = await self._reader.read(4096)
            except (ConnectionError, OSError):
                return b""
            if not data:
                return b""
            payload = b"".join(self._manager.filter(data))
            await self._drain()
            if payload:
                return payload

    async def write(self, data: bytes) -> None:
        try:
            for chunk in self._manager.escape(data):
                self._writer.write(chunk)
        except (ConnectionError, OSError, RuntimeError):
            return
        await self._drain()

    async def _drain(self) -> None:
        try:
            await self._writer.drain()
        except (ConnectionError, OSError):
            pass


class Rfc2217Endpoint(TcpEndpoint):
    """An RFC 2217 listener feeding one bus (``rfc2217://host:port`` for pyserial)."""

    def __init__(
        self,
        serve: Serve,
        line: LineSettings,
        on_line: OnLine,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        gate: Gate | None = None,
    ) -> None:
        super().__init__(serve, host, port, gate=gate)
        self._line = line
        self._on_line = on_line

    @property
    def url(self) -> str:
        """What pyserial opens."""
        return f"rfc2217://{self.host}:{self.port}"

    def _link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Link:
        return _Rfc2217Link(reader, writer, _LinePort(self._line, self._on_line))


__all__ = ["Rfc2217Endpoint"]
