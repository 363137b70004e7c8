"""A stream decoder for the bus: bytes in chunks of any size in, whole frames out.

Hunting (as the DL/T 645 one): skip to the next 68H, read the length field, require 16H at the
end and both CRCs (HCS first, so a false start is dropped early); a candidate that fails is
abandoned one byte at a time and never raises.  An incomplete candidate waits for more bytes
unless a complete valid frame already sits later in the buffer (a stray 68H with a large length
must not hold up the reply behind it).  DL/T 645 frames on a mixed bus are noise here and
vice versa.  ``feed_eof()`` drops what is left as truncated.

Counters: ``frames``, ``dropped_bytes`` (FE wake-up bytes not counted), ``bad_checksums``,
``truncated``.
"""

from __future__ import annotations

from protocols.dlt698.errors import Dlt698Error
from protocols.dlt698.frame import END, MIN_FRAME, PREAMBLE, START, Frame, crc16, parse_frame

_INCOMPLETE = -1
_INVALID = 0
MAX_FRAME = 4096  # longer announced lengths are treated as noise on a meter bus


class StreamDecoder:
    """Reassemble DL/T 698.45 frames from a byte stream; never raises on garbage."""

    __slots__ = ("_buf", "_eof", "bad_checksums", "dropped_bytes", "frames", "truncated")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._eof = False
        self.frames = 0
        self.dropped_bytes = 0
        self.bad_checksums = 0
        self.truncated = 0

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
                    frame = parse_frame(raw, checked=True)
                except Dlt698Error:  # e.g. a fragment header missing
                    self.dropped_bytes += n
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
        if have < 5:
            return _INCOMPLETE
        length = buf[i + 1] | (buf[i + 2] << 8)
        n = length + 2
        if length & 0xC000 or n < MIN_FRAME or n > MAX_FRAME:
            return _INVALID
        head = i + 5 + (buf[i + 4] & 0x0F) + 1 + 1  # after CA
        if head + 2 + 3 > i + n:
            return _INVALID
        if have < head + 2 - i:
            return _INCOMPLETE
        if crc16(buf[i + 1 : head]) != buf[head] | (buf[head + 1] << 8):
            if count:
                self.bad_checksums += 1
            return _INVALID
        if have < n:
            return _INCOMPLETE
        end = i + n
        if buf[end - 1] != END:
            return _INVALID
        if crc16(buf[i + 1 : end - 3]) != buf[end - 3] | (buf[end - 2] << 8):
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
