"""A set of sequence numbers kept as sorted, merged, inclusive ranges."""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator


class SeqRanges:
    """Sorted disjoint inclusive ranges; adjacent ranges are merged."""

    __slots__ = ("_firsts", "_lasts")

    def __init__(self, ranges: Iterable[tuple[int, int]] = ()) -> None:
        self._firsts: list[int] = []
        self._lasts: list[int] = []
        for first, last in ranges:
            self.add(first, last)

    def add(self, first: int, last: int) -> None:
        """Add ``first``…``last`` (inclusive)."""
        if last < first:
            raise ValueError(f"empty range {first}..{last}")
        # ranges touching or overlapping [first-1, last+1] merge with it
        lo = bisect.bisect_left(self._lasts, first - 1)
        hi = bisect.bisect_right(self._firsts, last + 1)
        if lo < hi:
            first = min(first, self._firsts[lo])
            last = max(last, self._lasts[hi - 1])
        self._firsts[lo:hi] = [first]
        self._lasts[lo:hi] = [last]

    def __contains__(self, seq: object) -> bool:
        if not isinstance(seq, int):
            return False
        i = bisect.bisect_right(self._firsts, seq) - 1
        return i >= 0 and self._lasts[i] >= seq

    def covers(self, first: int, last: int) -> bool:
        """True when every seq of ``first``…``last`` is in the set."""
        i = bisect.bisect_right(self._firsts, first) - 1
        return i >= 0 and self._lasts[i] >= last

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter(zip(self._firsts, self._lasts, strict=True))

    def __len__(self) -> int:
        return len(self._firsts)

    def __repr__(self) -> str:
        return f"SeqRanges({list(self)})"

    def prefix_end(self, base: int) -> int:
        """The last seq of the run starting at ``base`` (``base - 1`` if ``base`` is absent)."""
        i = bisect.bisect_right(self._firsts, base) - 1
        if i >= 0 and self._lasts[i] >= base:
            return self._lasts[i]
        return base - 1

    def holes(self, start: int, limit: int) -> list[tuple[int, int]]:
        """Up to ``limit`` missing ranges from ``start`` up to the highest stored seq."""
        out: list[tuple[int, int]] = []
        cursor = start
        for first, last in self:
            if last < cursor:
                continue
            if first > cursor:
                out.append((cursor, first - 1))
                if len(out) >= limit:
                    break
            cursor = max(cursor, last + 1)
        return out

    def missing(self, first: int, last: int) -> list[tuple[int, int]]:
        """The runs of ``first``…``last`` (inclusive) that are not in the set."""
        out: list[tuple[int, int]] = []
        cursor = first
        i = max(bisect.bisect_right(self._firsts, first) - 1, 0)
        while cursor <= last and i < len(self._firsts):
            lo, hi = self._firsts[i], self._lasts[i]
            if hi >= cursor:
                if lo > last:
                    break
                if lo > cursor:
                    out.append((cursor, lo - 1))
                cursor = hi + 1
            i += 1
        if cursor <= last:
            out.append((cursor, last))
        return out

    def after(self, seq: int) -> list[tuple[int, int]]:
        """The ranges entirely above ``seq``."""
        return [(f, last) for f, last in self if f > seq]
