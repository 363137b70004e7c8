"""A stream decoder for the bus: bytes in chunks of any size in, whole frames out.

Hunting is ``protocols.stream``'s (shared with DL/T 645); the DL/T 698.45 check is here: read
the length field, require 16H at the end and both CRCs (HCS first, so a false start is dropped
early); a candidate that fails is abandoned one byte at a time and never raises.  DL/T 645
frames on a mixed bus are noise here and vice versa.  ``feed_eof()`` drops what is left as
truncated.

Counters: ``frames``, ``dropped_bytes`` (FE wake-up bytes not counted), ``bad_checksums``,
``truncated``.
"""

from __future__ import annotations

from protocols.dlt698.errors import Dlt698Error
from protocols.dlt698.frame import END, MIN_FRAME, Frame, crc16, parse_frame
from protocols.stream import INCOMPLETE, INVALID, FrameStream

MAX_FRAME = 4096  # longer announced lengths are treated as noise on a meter bus


class StreamDecoder(FrameStream[Frame]):
    """Reassemble DL/T 698.45 frames from a byte stream; never raises on garbage."""

    __slots__ = ()

    def _accept(self, raw: bytes) -> Frame | None:
        try:
            return parse_frame(raw, checked=True)
        except Dlt698Error:  # e.g. a fragment header missing
            self.dropped_bytes += len(raw)
            return None

    def _frame_length(self, i: int, count: bool) -> int:
        buf = self._buf
        have = len(buf) - i
        if have < 5:
            return INCOMPLETE
        length = buf[i + 1] | (buf[i + 2] << 8)
        n = length + 2
        if length & 0xC000 or n < MIN_FRAME or n > MAX_FRAME:
            return INVALID
        head = i + 5 + (buf[i + 4] & 0x0F) + 1 + 1  # after CA
        if head + 2 + 3 > i + n:
            return INVALID
        if have < head + 2 - i:
            return INCOMPLETE
        if crc16(buf[i + 1 : head]) != buf[head] | (buf[head + 1] << 8):
            if count:
                self.bad_checksums += 1
            return INVALID
        if have < n:
            return INCOMPLETE
        end = i + n
        if buf[end - 1] != END:
            return INVALID
        if crc16(buf[i + 1 : end - 3]) != buf[end - 3] | (buf[end - 2] << 8):
            if count:
                self.bad_checksums += 1
            return INVALID
        return n


__all__ = ["MAX_FRAME", "StreamDecoder"]
