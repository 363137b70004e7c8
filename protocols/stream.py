"""The hunt for 68H … 16H frames in a byte stream, shared by DL/T 645 and DL/T 698.45.

Both families start a frame with 68H, end it with 16H and let FEH wake-up bytes precede it.
Hunting (pymodbus ``framer/rtu.py`` style): skip to the next 68H; ask the protocol whether a
valid frame starts there (``_frame_length``: its length, ``INVALID`` or ``INCOMPLETE``).  A
candidate that fails is abandoned one byte at a time (so a real frame that starts inside it is
still found) and never raises.  A candidate that is not complete yet waits for more bytes,
unless a complete valid frame already sits later in the buffer (a stray 68H with a large length
must not hold up the reply behind it).  ``feed_eof()`` says no more bytes will come: what is
left is dropped and counted as truncated.

Counters: ``frames`` delivered, ``dropped_bytes`` (noise and abandoned frames, FE wake-up bytes
not counted), ``bad_checksums`` (counted by the protocol's check), ``truncated``.
"""

from __future__ import annotations

from typing import Final, Generic, Self, TypeVar

START: Final = 0x68
END: Final = 0x16
PREAMBLE: Final = 0xFE
INCOMPLETE: Final = -1
INVALID: Final = 0

F = TypeVar("F")


class FrameStream(Generic[F]):
    """Reassemble 68H … 16H frames from a byte stream; a protocol supplies check and parse."""

    __slots__ = ("_buf", "_eof", "bad_checksums", "dropped_bytes", "frames", "truncated")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._eof = False
        self.frames = 0
        self.dropped_bytes = 0
        self.bad_checksums = 0
        self.truncated = 0

    def _frame_length(self, i: int, count: bool) -> int:
        """Length of a valid frame at ``i``, ``INVALID`` or ``INCOMPLETE``.

        ``count`` says whether a checksum failure is counted in ``bad_checksums`` (not while
        looking ahead for a later frame).
        """
        raise NotImplementedError

    def _accept(self, raw: bytes) -> F | None:
        """The frame ``raw`` (checked by ``_frame_length``) carries, or None to skip it."""
        raise NotImplementedError

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

    def next_frame(self) -> F | None:
        """The next whole frame, or ``None`` until more bytes arrive."""
        buf = self._buf
        while buf:
            start = buf.find(START)
            if start < 0:
                self._drop(len(buf))
                return None
            if start:
                self._drop(start)
            n = self._frame_length(0, count=True)
            if n > 0:
                raw = bytes(buf[:n])
                del buf[:n]
                frame = self._accept(raw)
                if frame is None:
                    continue
                self.frames += 1
                return frame
            if n == INVALID:
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

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> F:
        frame = self.next_frame()
        if frame is None:
            raise StopIteration
        return frame

    def _drop(self, n: int) -> None:
        buf = self._buf
        self.dropped_bytes += n - buf.count(PREAMBLE, 0, n)
        del buf[:n]

    def _later_frame(self) -> int:
        """Offset of a complete valid frame after the incomplete one at 0, or 0."""
        buf = self._buf
        j = buf.find(START, 1)
        while j > 0:
            if self._frame_length(j, count=False) > 0:
                return j
            j = buf.find(START, j + 1)
        return 0


__all__ = ["END", "INCOMPLETE", "INVALID", "PREAMBLE", "START", "FrameStream"]
