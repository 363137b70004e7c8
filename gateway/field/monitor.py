"""Passive bus monitoring: split received bytes into frames (both directions) and noise.

A sniffer on RS-485 hears the master and the meters on one pair of wires, with no direction
signal: direction comes from the frames themselves (DL/T 645: the control byte's D7; Modbus:
which frame shape and CRC fit — request, response or exception).  Bytes that fit no frame are
noise, shown as hex.  A DL/T 645 frame keeps its FE wake-up bytes.

Capture file (``--capture``; ``taiqu dlt645 decode --capture FILE`` reads it back), one frame a
line, ``#`` comments::

    2026-12-06T10:31:02.123456+00:00 req fefefefe6801000000000068110433333433c316
    2026-12-06T10:31:02.301877+00:00 rep fefefefe680100000000006891...16
    2026-12-06T10:31:05.000112+00:00 noise 00ff3c
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from protocols.dlt645.describe import describe_frame
from protocols.dlt645.errors import Dlt645Error
from protocols.dlt645.frame import END, OVERHEAD, PREAMBLE, START, parse_frame
from protocols.modbus.errors import ModbusError
from protocols.modbus.rtu import decode_frame as decode_modbus

REQ, REP, NOISE = "req", "rep", "noise"
MAX_BUFFER = 4096  # a sniffer never holds more than this undecided (noise is let go)


@dataclass(frozen=True, slots=True)
class Seen:
    """One frame (or run of noise) heard on the bus."""

    ts: float  # wall clock, seconds since the epoch (when its last byte arrived)
    direction: str  # req, rep or noise
    raw: bytes
    protocol: str = ""  # dlt645, modbus or "" for noise
    decoded: dict[str, Any] | None = None

    def capture_line(self) -> str:
        """The line of a capture file."""
        when = datetime.fromtimestamp(self.ts, UTC).isoformat(timespec="microseconds")
        return f"{when} {self.direction} {self.raw.hex()}"


def _modbus_at(buf: bytes | bytearray, i: int) -> tuple[int, Any] | None:
    if len(buf) - i < 5 or not 1 <= buf[i] <= 247:
        return None
    sizes = {8, 5}
    if len(buf) - i >= 3:
        sizes.add(5 + buf[i + 2])
    for n in sorted(sizes, reverse=True):
        if i + n <= len(buf):
            try:
                return n, decode_modbus(bytes(buf[i : i + n]))
            except ModbusError:
                continue
    return None


class Splitter:
    """Bytes in (any chunking), ``Seen`` frames and noise out."""

    def __init__(self, zone: str = "") -> None:
        self._buf = bytearray()
        self._zone = zone

    def feed(self, ts: float, chunk: bytes) -> list[Seen]:
        """Complete frames so far (noise before them included)."""
        self._buf += chunk
        return self._scan(ts, final=False)

    def flush(self, ts: float) -> list[Seen]:
        """The line went silent: whatever is left is noise (a torn frame)."""
        return self._scan(ts, final=True)

    def _scan(self, ts: float, final: bool) -> list[Seen]:
        buf, out = self._buf, []
        noise_from = i = 0
        while i < len(buf):
            found = self._frame_at(buf, i, ts)
            if found == "wait" and not final and len(buf) < MAX_BUFFER:
                break  # a frame may be arriving: decide with more bytes
            if found is None or found == "wait":
                i += 1
                continue
            start, end, seen = found
            if start > noise_from:
                out.append(Seen(ts, NOISE, bytes(buf[noise_from:start])))
            out.append(seen)
            i = noise_from = end
        if (final or len(buf) >= MAX_BUFFER) and len(buf) > noise_from:
            out.append(Seen(ts, NOISE, bytes(buf[noise_from:])))
            noise_from = len(buf)
        del buf[:noise_from]
        return out

    def _frame_at(self, buf: bytearray, i: int, ts: float) -> Any:
        b = buf[i]
        if b == PREAMBLE:
            j = i
            while j < len(buf) and buf[j] == PREAMBLE:
                j += 1
            if j == len(buf):
                return "wait"
            found = self._dlt645_at(buf, j, ts)
            if isinstance(found, tuple):
                return (
                    i,
                    found[1],
                    Seen(
                        ts, found[2].direction, bytes(buf[i : found[1]]), "dlt645", found[2].decoded
                    ),
                )
            return found
        if b == START:
            found = self._dlt645_at(buf, i, ts)
            if found is not None:
                return found
        modbus = _modbus_at(buf, i)
        if modbus is not None:
            n, decoded = modbus
            direction = REQ if decoded.kind in ("request", "illegal_request") else REP
            info = {"kind": decoded.kind, **_plain(decoded.message)}
            return i, i + n, Seen(ts, direction, bytes(buf[i : i + n]), "modbus", info)
        return None

    def _dlt645_at(self, buf: bytearray, i: int, ts: float) -> Any:
        if buf[i] != START:
            return None
        if len(buf) - i < 10:
            return "wait"
        if buf[i + 7] != START:
            return None
        n = OVERHEAD + buf[i + 9]
        if len(buf) - i < n:
            return "wait"
        raw = bytes(buf[i : i + n])
        if raw[-1] != END:
            return None
        try:
            frame = parse_frame(raw)
        except Dlt645Error:
            return None
        decoded = describe_frame(frame, None, self._zone) if self._zone else describe_frame(frame)
        direction = REP if frame.from_meter else REQ
        return i, i + n, Seen(ts, direction, raw, "dlt645", decoded)


def _plain(message: Any) -> dict[str, Any]:
    fields = getattr(message, "__dataclass_fields__", {})
    return {name: getattr(message, name) for name in fields}


def parse_capture_line(line: str) -> tuple[str, str, bytes] | None:
    """``(time, direction, bytes)`` of a capture line; None for blanks and comments.

    ``ValueError`` for a line that is not ``TIME DIRECTION HEX``.
    """
    text = line.strip()
    if not text or text.startswith("#"):
        return None
    parts = text.split()
    if len(parts) != 3 or parts[1] not in (REQ, REP, NOISE):
        raise ValueError(f"not a capture line (TIME req|rep|noise HEX): {text[:60]!r}")
    return parts[0], parts[1], bytes.fromhex(parts[2])
