"""A multi-drop, half-duplex RS-485 bus paced at its baud rate.

One asyncio task per bus does every transaction (``Bus.serve`` on the endpoint's link)::

    master bytes ──► on the wire for n × bit_time × bits_per_byte (8E1 = 11 bits per byte)
                 ──► every protocol listener on the bus (the codecs' slave role) sees them
                 ──► the addressed meter answers after its response delay (20–500 ms);
                     a wrong address gets silence, a broadcast gets no answer
                 ──► reply bytes paced at the baud rate: byte i is written no earlier than
                     tx_start + (i + 1) × byte_time, so a reader never sees it faster than the wire

Line settings are per meter: each listener hears the line at its meters' settings; when the
master's port is set otherwise (``set_master_line``, from RFC 2217) the listener hears noise and
its replies reach the master as noise (``simulators.line.garble``, deterministic).

Two meters answering at once garble the line (overlapping bytes are AND-ed: a driven 0 bit
wins over an idle 1 on a real bus, roughly).  ``pace = False`` (for accelerated clocks) skips
the wire time and response delays; the ``late_ms`` fault still delays.

A tap (``taps``, served by ``simulators.endpoints.TapEndpoint``) gets a copy of every byte on
the line in wire order, both directions, as a sniffer on the pair of wires would.

Timing uses the event loop's monotonic clock (wall time); meter state uses the shared ``Clock``.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from simulators.faults import NO_FAULTS, Faults
from simulators.line import LineSettings, garble
from simulators.meter import Meter
from taiqu.clock import Clock

PACE_QUANTUM = 0.04  # seconds between paced writes of a long frame (the last byte is exact)


@dataclass
class Answer:
    """A reply one meter puts on the line (``wrong`` re-encodes it with another address)."""

    meter: Meter
    data: bytes
    wrong: Callable[[], bytes] | None = None


class Listener(Protocol):
    """One protocol's slave codec listening to every byte on a bus.

    A listener may carry ``line`` (its meters' ``LineSettings``; absent or None: the bus's).
    """

    def feed(self, data: bytes, ts: float) -> list[Answer]:
        """Bytes from the master in, the answers of addressed meters out."""
        ...

    def meters(self) -> Iterable[Meter]:
        """The meters this listener answers for."""
        ...


class Link(Protocol):
    """The master's side of the line: bytes in, bytes out."""

    async def read(self) -> bytes:
        """The next bytes from the master; ``b""`` when it hung up."""
        ...

    async def write(self, data: bytes) -> None:
        """Put bytes on the line towards the master."""
        ...


@dataclass
class Traffic:
    """Bytes and frames exchanged (ground truth: what crossed the wire)."""

    bytes_in: int = 0  # master → meters
    bytes_out: int = 0  # meters → master (as written, faults included)
    requests: int = 0  # frames addressed to this meter
    replies: int = 0  # replies written

    def as_dict(self) -> dict[str, int]:
        """Plain values (for JSON)."""
        return {
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "requests": self.requests,
            "replies": self.replies,
        }


def bits_per_byte(parity: str = "E", bytesize: int = 8, stopbits: int = 1) -> int:
    """Bits a character takes on the wire: start + data + parity + stop (8E1 = 11)."""
    return 1 + bytesize + (0 if parity.upper() == "N" else 1) + stopbits


def overlap(frames: list[tuple[float, bytes]], byte_time: float) -> bytes:
    """What the master hears when several replies overlap (start offset, bytes)."""
    first = min(start for start, _ in frames)
    placed = [
        (round((start - first) / byte_time) if byte_time else 0, data) for start, data in frames
    ]
    length = max(offset + len(data) for offset, data in placed)
    line = bytearray([0xFF] * length)
    for offset, data in placed:
        for i, b in enumerate(data):
            line[offset + i] &= b
    return bytes(line)


@dataclass
class Bus:
    """One RS-485 line: its serial settings, meters (through listeners), faults and traffic."""

    name: str
    clock: Clock
    listeners: list[Listener]
    baud: int = 2400
    parity: str = "E"
    bytesize: int = 8
    stopbits: int = 1
    pace: bool = True
    faults: Faults = NO_FAULTS
    seed: int = 0
    meter_faults: dict[str, Faults] = field(default_factory=dict)
    traffic: Traffic = field(default_factory=Traffic)
    meter_traffic: dict[str, Traffic] = field(default_factory=dict)
    on_exchange: Callable[[str, float], None] | None = None  # (meter address, excess) hook
    taps: list[Callable[[bytes], None]] = field(default_factory=list)  # sniffers: every byte

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._rx_end = 0.0
        self.transactions = 0  # chunks from the master fully handled (tests wait on it)
        self.line = LineSettings(self.baud, self.parity.upper(), self.bytesize, self.stopbits)
        self.master_line = self.line  # what the master's port is set to (RFC 2217 tells)
        self.byte_time = self.line.byte_time
        self.garbled_bytes = 0  # bytes a receiver heard at other settings than sent

    def set_master_line(self, line: LineSettings) -> None:
        """The master switched its port (an RFC 2217 client's SET-BAUDRATE, SET-PARITY …)."""
        self.master_line = line
        self.byte_time = line.byte_time

    def reset_master_line(self) -> None:
        """A new master (a plain TCP or pty client) is taken to use the bus's settings."""
        self.set_master_line(self.line)

    def meters(self) -> list[Meter]:
        """Every meter on the line."""
        return [m for listener in self.listeners for m in listener.meters()]

    def wire_seconds(self, nbytes: int) -> float:
        """How long ``nbytes`` take on this line."""
        return nbytes * self.byte_time

    def faults_for(self, address: str) -> Faults:
        """The faults in force for one meter (bus ∪ meter)."""
        return self.faults.combine(self.meter_faults.get(address, NO_FAULTS))

    def traffic_of(self, address: str) -> Traffic:
        """Counters of one meter."""
        traffic = self.meter_traffic.get(address)
        if traffic is None:
            traffic = self.meter_traffic[address] = Traffic()
        return traffic

    async def serve(self, link: Link) -> None:
        """Do every transaction on this bus until the master hangs up."""
        loop = asyncio.get_running_loop()
        self._rx_end = 0.0
        self.reset_master_line()
        while True:
            data = await link.read()
            if not data:
                return
            now = loop.time()
            # the master's bytes take wire time too: the request ends no earlier than this
            self._rx_end = max(now, self._rx_end) + (
                self.wire_seconds(len(data)) if self.pace else 0.0
            )
            self.traffic.bytes_in += len(data)
            self._tap(data)
            await self._transact(link, data, loop)
            self.transactions += 1

    async def _transact(self, link: Link, data: bytes, loop: asyncio.AbstractEventLoop) -> None:
        if self.faults.silent:
            return
        answers: list[Answer] = []
        ts = self.clock.now().timestamp()
        master = self.master_line
        for listener in self.listeners:
            own = getattr(listener, "line", None) or self.line
            if own == master:
                answers += listener.feed(data, ts)
                continue
            heard = garble(data, master, own)  # a meter at other settings hears noise …
            self.garbled_bytes += len(heard)
            for answer in listener.feed(heard, ts):  # … and its answers reach us as noise
                answer.data = garble(answer.data, own, master)
                answer.wrong = None
                answers.append(answer)
        out: list[tuple[float, bytes]] = []
        for answer in answers:
            address = answer.meter.address
            faults = self.faults_for(address)
            traffic = self.traffic_of(address)
            traffic.requests += 1
            traffic.bytes_in += len(data)
            if faults.silent or (faults.drop and self._rng.random() < faults.drop):
                continue
            reply = answer.data
            if faults.wrong_address and answer.wrong is not None:
                reply = answer.wrong()
            if faults.corrupt and self._rng.random() < faults.corrupt and reply:
                position = self._rng.randrange(len(reply))
                damaged = bytearray(reply)
                damaged[position] ^= 1 << self._rng.randrange(8)
                reply = bytes(damaged)
            delay = answer.meter.spec.response_delay_ms / 1000 if self.pace else 0.0
            delay += faults.late_ms / 1000
            out.append((self._rx_end + delay, reply))
            traffic.replies += 1
            traffic.bytes_out += len(reply)
        if self.faults.echo:
            await self._send(link, data, self._rx_end - self.wire_seconds(len(data)), loop)
        if not out:
            return
        start = min(s for s, _ in out)
        frame = out[0][1] if len(out) == 1 else overlap(out, self.byte_time)
        if self.faults.noise:
            noise = bytes(self._rng.randrange(256) for _ in range(self.faults.noise))
            frame = noise + frame
            start -= self.wire_seconds(len(noise)) if self.pace else 0.0
        await self._send(link, frame, start, loop)
        self.traffic.bytes_out += len(frame)

    def _tap(self, data: bytes) -> None:
        for tap in self.taps:
            tap(data)

    async def _send(
        self, link: Link, frame: bytes, start: float, loop: asyncio.AbstractEventLoop
    ) -> None:
        """Write ``frame`` so that byte i leaves no earlier than ``start + (i+1) · byte_time``."""
        if not self.pace:
            if start > loop.time():
                await asyncio.sleep(start - loop.time())
            self._tap(frame)
            await link.write(frame)
            return
        bt = self.byte_time
        sent = 0
        end = start + len(frame) * bt
        while sent < len(frame):
            now = loop.time()
            due = min(len(frame), int((now - start) / bt + 1e-9)) if now > start else 0
            if due > sent:
                self._tap(frame[sent:due])
                await link.write(frame[sent:due])
                sent = due
                continue
            wake = min(end, max(now + PACE_QUANTUM, start + (sent + 1) * bt))
            await asyncio.sleep(max(0.0, wake - now))
        self._rx_end = max(self._rx_end, end)
