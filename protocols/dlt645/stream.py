"""A stream decoder for the bus: bytes in chunks of any size in, whole frames out.

Hunting is ``protocols.stream``'s (shared with DL/T 698.45); the DL/T 645 check is here: require
68H seven bytes after the first; use L to find CS and 16H; verify both.  A candidate that fails
is abandoned one byte at a time and never raises; ``feed_eof()`` drops what is left as truncated.

Counters: ``frames`` delivered, ``dropped_bytes`` (noise and abandoned frames, FE wake-up bytes
not counted), ``bad_checksums``, ``truncated``, ``echoes`` (own requests read back, skipped only
when ``skip_requests`` is set; otherwise recognisable by ``Frame.from_meter`` being false).
"""

from __future__ import annotations

from protocols.dlt645.errors import Dlt645Error
from protocols.dlt645.frame import END, OVERHEAD, START, Frame, parse_frame
from protocols.stream import INCOMPLETE, INVALID, FrameStream


class StreamDecoder(FrameStream[Frame]):
    """Reassemble DL/T 645 frames from a byte stream; never raises on garbage."""

    __slots__ = ("echoes", "skip_requests")

    def __init__(self, skip_requests: bool = False) -> None:
        super().__init__()
        self.skip_requests = skip_requests
        self.echoes = 0

    def _accept(self, raw: bytes) -> Frame | None:
        try:
            frame = parse_frame(raw)
        except Dlt645Error:  # e.g. an address that is not BCD
            self.dropped_bytes += len(raw)
            return None
        if self.skip_requests and not frame.from_meter:
            self.echoes += 1
            return None
        return frame

    def _frame_length(self, i: int, count: bool) -> int:
        buf = self._buf
        have = len(buf) - i
        if have < 8:
            return INCOMPLETE
        if buf[i + 7] != START:
            return INVALID
        if have < 10:
            return INCOMPLETE
        n = OVERHEAD + buf[i + 9]
        if have < n:
            return INCOMPLETE
        if buf[i + n - 1] != END:
            return INVALID
        if sum(buf[i : i + n - 2]) & 0xFF != buf[i + n - 2]:
            if count:
                self.bad_checksums += 1
            return INVALID
        return n


__all__ = ["StreamDecoder"]
