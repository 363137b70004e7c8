"""Serial line settings, and what a UART hears when sender and receiver disagree on them.

Every meter has its own settings (baud, parity, data and stop bits: a DL/T 645-1997 meter at
1200 8E1, a 2007 meter at 2400 8E1, a Modbus meter at 9600 8N1); the master sets its port per
transaction (over RFC 2217 the simulator learns it).  A receiver at other settings than the
sender does not get the sender's bytes.  Real UARTs then show framing and parity errors, bytes
sampled at the wrong rate, and bytes dropped by firmware that checks parity; the model here is
deterministic so tests can rely on it:

- same settings: the bytes arrive as sent;
- any difference: the receiver gets ``len × min(baud) / max(baud)`` bytes (at least one), each
  a function of the sent bytes and both settings, all in 0x80…0xFD.  No such byte is a DL/T 645
  start byte (68H), preamble (FEH) or a Modbus read function code (03H/04H): a garbled request is
  never a valid DL/T 645 frame (a Modbus one would need its CRC to match by chance, the same way
  every time), so a meter at other settings stays silent, and a reply it sends at its own
  settings reaches the master as noise.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

from simulators.errors import SimConfigError

_LINE = re.compile(r"^\s*(\d+)\s*[ ,/]?\s*([5-8])([NEOMS])([12])\s*$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class LineSettings:
    """Baud rate and character format (``2400 8E1``)."""

    baud: int = 2400
    parity: str = "E"
    bytesize: int = 8
    stopbits: int = 1

    @classmethod
    def parse(cls, text: str) -> LineSettings:
        """``"1200 8E1"`` → settings (``SimConfigError`` if malformed)."""
        match = _LINE.match(text)
        if not match or int(match.group(1)) <= 0:
            raise SimConfigError(f"line settings {text!r}: expected e.g. '2400 8E1' or '9600 8N1'")
        baud, size, parity, stop = match.groups()
        return cls(int(baud), parity.upper(), int(size), int(stop))

    def __str__(self) -> str:
        return f"{self.baud} {self.bytesize}{self.parity}{self.stopbits}"

    @property
    def bits_per_byte(self) -> int:
        """Start + data + parity + stop bits of one character."""
        return 1 + self.bytesize + (0 if self.parity == "N" else 1) + self.stopbits

    @property
    def byte_time(self) -> float:
        """Seconds one character takes on the wire."""
        return self.bits_per_byte / self.baud


def garble(data: bytes, sender: LineSettings, receiver: LineSettings) -> bytes:
    """What a receiver at ``receiver`` settings gets of ``data`` sent at ``sender`` settings."""
    if sender == receiver or not data:
        return data
    slow, fast = sorted((sender.baud, receiver.baud))
    count = max(1, len(data) * slow // fast)
    salt = zlib.crc32(f"{sender}|{receiver}".encode())
    step = len(data) / count
    out = bytearray()
    for i in range(count):
        chunk = data[int(i * step) : int((i + 1) * step) or 1]
        value = zlib.crc32(chunk, salt ^ i) % 0x7E  # 0…125
        out.append(0x80 + value)  # 0x80…0xFD
    return bytes(out)


__all__ = ["LineSettings", "garble"]
