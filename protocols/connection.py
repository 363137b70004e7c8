"""What the DL/T 645 and DL/T 698.45 sans-IO connections share: ``NEED_DATA`` and the bus side.

Each role (a master/client, a slave/server) owns one ``FrameStream`` of its protocol: bytes read
from the bus go in with ``receive_data``; ``next_event`` (the protocol's) returns an event or
``NEED_DATA``.  ``ignored`` counts well-formed frames not meant for this role or request,
``echoes`` its own requests read back; noise and bad checksums are the stream's counters.
"""

from __future__ import annotations

from enum import Enum
from typing import Any, Generic, Literal, TypeVar

from protocols.stream import FrameStream

S = TypeVar("S", bound="FrameStream[Any]")


class NeedData(Enum):
    """Sentinel type of ``NEED_DATA``."""

    NEED_DATA = "NEED_DATA"


NEED_DATA: Literal[NeedData.NEED_DATA] = NeedData.NEED_DATA


class BusConnection(Generic[S]):
    """One role's end of a bus: its frame stream, wake-up preamble and counters."""

    def __init__(self, stream: S, preamble: int) -> None:
        self.stream = stream
        self.preamble = preamble
        self.ignored = 0
        self.echoes = 0

    def receive_data(self, chunk: bytes) -> None:
        """Feed bytes read from the bus."""
        self.stream.feed(chunk)

    @property
    def dropped_bytes(self) -> int:
        """Line noise skipped so far."""
        return self.stream.dropped_bytes

    @property
    def bad_checksums(self) -> int:
        """Frames dropped for a bad checksum (DL/T 698.45: HCS or FCS) so far."""
        return self.stream.bad_checksums


__all__ = ["NEED_DATA", "BusConnection", "NeedData"]
