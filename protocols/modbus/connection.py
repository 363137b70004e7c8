"""The two roles of a Modbus RTU bus, sans-IO: ``ModbusMaster`` polls, ``ModbusSlave`` answers.

Bytes in with ``receive_data``, events out with ``next_event`` until ``NEED_DATA``; framing and
the hunt through noise are ``protocols.modbus.rtu``'s.  Nothing here raises on bus input.
"""

from __future__ import annotations

from protocols.modbus.errors import ModbusUsageError
from protocols.modbus.messages import (
    MAX_UNIT,
    MIN_UNIT,
    NEED_DATA,
    ExceptionResponse,
    MasterEvent,
    NeedData,
    ReadRegisters,
    RegistersResponse,
    SlaveEvent,
)
from protocols.modbus.rtu import (
    ALL_REQUESTS,
    ALL_RESPONSES,
    READ_REQUESTS,
    RESPONSES,
    Candidates,
    RtuStream,
    encode_request,
    encode_response,
    request_event,
    response_event,
)


class _Role:
    """What both roles do with the bus bytes; ``foreign`` frames are the other direction's."""

    def __init__(self, primary: Candidates, foreign: Candidates) -> None:
        self._stream = RtuStream(primary, foreign)

    @property
    def dropped_bytes(self) -> int:
        """Bytes skipped as noise (or DL/T 645 traffic) so far."""
        return self._stream.dropped_bytes

    @property
    def foreign_frames(self) -> int:
        """Well-formed frames of the other direction seen (a master's echo, other meters)."""
        return self._stream.foreign_frames

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Feed bytes from the bus, in chunks of any size."""
        self._stream.feed(data)

    def discard_buffer(self) -> int:
        """Drop buffered bytes after a line silence or a timeout; returns how many."""
        return self._stream.discard()


class ModbusMaster(_Role):
    """The polling side: ``send(ReadRegisters)`` gives bytes; responses come out as events.

    With ``strict`` (the default) only the answer to the request in flight is returned; other
    well-formed responses (a late reply to an abandoned request) are counted in ``stray_frames``.
    """

    def __init__(self, *, strict: bool = True) -> None:
        super().__init__(RESPONSES, READ_REQUESTS)  # our own echo is foreign
        self.strict = strict
        self.pending: ReadRegisters | None = None
        self.stray_frames = 0

    def send(self, request: ReadRegisters) -> bytes:
        """The frame for ``request``, which becomes the request in flight."""
        if not isinstance(request, ReadRegisters):
            raise ModbusUsageError(f"a master sends ReadRegisters, not {type(request).__name__}")
        self.pending = request
        return encode_request(request)

    def next_event(self) -> MasterEvent | NeedData:
        """The next response, or ``NEED_DATA``."""
        while (frame := self._stream.next_frame()) is not None:
            event = response_event(frame)
            if event is None:  # well framed, impossible content (exception code 0)
                self._stream.dropped_bytes += len(frame)
                continue
            if self.strict and (self.pending is None or not self.pending.matches(event)):
                self.stray_frames += 1
                continue
            if self.pending is not None and self.pending.matches(event):
                self.pending = None
            return event
        return NEED_DATA


class ModbusSlave(_Role):
    """The meter side: requests come out as events; ``send(response)`` gives bytes.

    Requests for every unit are returned (one slave object may serve several simulated meters);
    broadcasts (unit 0) and reserved units are skipped, since a read is never answered there.
    """

    def __init__(self) -> None:
        super().__init__(ALL_REQUESTS, ALL_RESPONSES)  # other meters are foreign
        self.ignored_frames = 0

    def send(self, response: RegistersResponse | ExceptionResponse) -> bytes:
        """The frame for ``response``."""
        if not isinstance(response, RegistersResponse | ExceptionResponse):
            raise ModbusUsageError(f"a slave sends responses, not {type(response).__name__}")
        return encode_response(response)

    def next_event(self) -> SlaveEvent | NeedData:
        """The next request addressed to a unit 1…247, or ``NEED_DATA``."""
        while (frame := self._stream.next_frame()) is not None:
            if not MIN_UNIT <= frame[0] <= MAX_UNIT:
                self.ignored_frames += 1
                continue
            return request_event(frame)
        return NEED_DATA


__all__ = ["ModbusMaster", "ModbusSlave"]
