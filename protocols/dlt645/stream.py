"""A stream decoder for the bus: bytes in chunks of any size in, whole frames out.

Hunting (pymodbus ``framer/rtu.py`` style): skip to the next 68H; require 68H seven bytes later;
use L to find CS and 16H; verify both.  A candidate that fails is abandoned one byte at a time
(so a real frame that starts inside it is still found) and never raises.  A candidate that is not
complete yet waits for more bytes, unless a complete valid frame already sits later in the
buffer (a stray 68H with a large L must not hold up the reply behind it).  ``feed_eof()`` says no
more bytes will come: what is left is dropped and counted as truncated.

Counters: ``frames`` delivered, ``dropped_bytes`` (noise and abandoned frames, FE wake-up bytes
not counted), ``bad_checksums``, ``truncated``, ``echoes`` (own requests read back, skipped only
when ``skip_requests`` is set; otherwise recognisable by ``Frame.from_meter`` being false).
"""

from __future__ import annotations

from protocols.dlt645.errors import Dlt645Error
from protocols.dlt645.frame import END, OVERHEAD, PREAMBLE, START, Frame, parse_frame

_INCOMPLETE = -1
_INVALID = 0


class StreamDecoder:
    """Reassemble DL/T 645 frames from a byte stream; never raises on garbage."""

    __slots__ = (
        "_buf",
        "_eof",
        "bad_checksums",
        "dropped_bytes",
        "echoes",
        "frames",
        "skip_requests",
        "truncated",
    )

    def __init__(self, skip_requests: bool = False) -> None:
        self._buf = bytearray()
        self._eof = False
        self.skip_requests = skip_requests
        self.frames = 0
        self.dropped_bytes = 0
        self.bad_checksums = 0
        self.truncated = 0
        self.echoes = 0

    def feed(self, chunk: bytes) -> None:
        """Append received bytes."""
        self._buf += chunk
        self._eof = False

    def feed_eof(self) -> None:
        """No more bytes will come: incomplete frames left in the buffer are dropped."""
        self._eof = True

    @property
    def buffered(self) -> int:
        """Bytes received but not yet delivered or dropped."""
        return len(self._buf)

    def clear(self) -> int:
        """Drop everything buffered (e.g. after a timeout); return how many bytes."""
        n = len(self._buf)
        self._drop(n)
        return n

    def next_frame(self) -> Frame | None:
        """The next whole frame, or ``None`` until more bytes arrive."""
        buf = self._buf
        while buf:
            start = buf.find(START)
            if start < 0:
                self._drop(len(buf))
                return None
            if start:
                self._drop(start)
            n = self._check(0, count=True)
            if n > 0:
                raw = bytes(buf[:n])
                del buf[:n]
                try:
                    frame = parse_frame(raw)
                except Dlt645Error:  # e.g. an address that is not BCD
                    self.dropped_bytes += n
                    continue
                if self.skip_requests and not frame.from_meter:
                    self.echoes += 1
                    continue
                self.frames += 1
                return frame
            if n == _INVALID:
                self._drop(1)
                continue
            later = self._later_frame()
            if later:
                self._drop(later)
                continue
            if self._eof:
                self.truncated += 1
                self._drop(1)
                continue
            return None
        return None

    def __iter__(self) -> StreamDecoder:
        return self

    def __next__(self) -> Frame:
        frame = self.next_frame()
        if frame is None:
            raise StopIteration
        return frame

    def _drop(self, n: int) -> None:
        buf = self._buf
        self.dropped_bytes += n - buf.count(PREAMBLE, 0, n)
        del buf[:n]

    def _check(self, i: int, count: bool) -> int:
        """Length of a valid frame at ``i``, ``_INVALID`` or ``_INCOMPLETE``."""
        buf = self._buf
        have = len(buf) - i
        if have < 8:
            return _INCOMPLETE
        if buf[i + 7] != START:
            return _INVALID
        if have < 10:
            return _INCOMPLETE
        n = OVERHEAD + buf[i + 9]
        if have < n:
            return _INCOMPLETE
        if buf[i + n - 1] != END:
            return _INVALID
        if sum(buf[i : i + n - 2]) & 0xFF != buf[i + n - 2]:
            if count:
                self.bad_checksums += 1
            return _INVALID
        return n

    def _later_frame(self) -> int:
        """Offset of a complete valid frame after the incomplete one at 0, or 0."""
        buf = self._buf
        j = buf.find(START, 1)
        while j > 0:
            if self._check(j, count=False) > 0:
                return j
            j = buf.find(START, j + 1)
        return 0
