"""Sans-IO connections: one codec for both roles (h11 / wsproto pattern).

``Master`` (the gateway) sends requests and turns the meter's bytes into replies; ``Slave``
(a simulated meter) turns the master's bytes into requests and its replies into bytes.  Neither
does I/O: ``send`` returns bytes to write, ``receive_data`` takes bytes read, ``next_event``
returns an event or ``NEED_DATA``.

Master state machine: ``send`` arms the expected reply (address pattern, function, DI); the next
matching reply disarms it and is returned.  Own-request echoes (direction bit 0), replies from
other addresses, to other functions or other identifiers are skipped and counted (``ignored``);
line noise is counted by the stream decoder.  Broadcasts (99…99) expect no reply.  After a
timeout the caller calls ``abandon()``.
"""

from __future__ import annotations

from dataclasses import dataclass

from protocols.connection import NEED_DATA, BusConnection, NeedData
from protocols.dlt645.codec import decode_reply, decode_request, encode_reply, encode_request
from protocols.dlt645.control import Version
from protocols.dlt645.errors import Dlt645ValueError
from protocols.dlt645.frame import BROADCAST, address_matches, encode_frame
from protocols.dlt645.messages import ReadFollowUp, ReadReply, Reply, Request
from protocols.dlt645.security import PLAINTEXT, ControlSealer
from protocols.dlt645.stream import StreamDecoder
from protocols.model import DEFAULT_METER_ZONE


@dataclass(frozen=True, slots=True)
class _Expected:
    address: str
    function_code: int
    di: int | None
    version: Version


class _Connection(BusConnection[StreamDecoder]):
    def __init__(self, version: Version, zone: str, preamble: int) -> None:
        super().__init__(StreamDecoder(), preamble)
        self.version = version
        self.zone = zone


class Master(_Connection):
    """The gateway's side of a bus: requests out, replies in."""

    def __init__(
        self,
        version: Version = Version.V2007,
        zone: str = DEFAULT_METER_ZONE,
        preamble: int = 4,
        sealer: ControlSealer = PLAINTEXT,
    ) -> None:
        super().__init__(version, zone, preamble)
        self.sealer = sealer
        self._expected: _Expected | None = None

    @property
    def awaiting_reply(self) -> bool:
        """Whether a sent request still waits for its reply."""
        return self._expected is not None

    def send(self, request: Request) -> bytes:
        """The bytes of ``request``; arms the reply it expects (none for broadcasts)."""
        version = request.version or self.version
        frame = encode_request(request, version, self.sealer)
        if frame.address == BROADCAST:
            self._expected = None
        else:
            di = getattr(request, "di", None)
            self._expected = _Expected(frame.address, frame.function_code, di, version)
        return encode_frame(frame, self.preamble)

    def abandon(self) -> None:
        """Give up on the expected reply (a timeout) and drop what is buffered."""
        self._expected = None
        self.stream.clear()

    def next_event(self) -> Reply | NeedData:
        """The reply to the last request, or ``NEED_DATA``.

        ``Dlt645ValueError`` (with ``.frame``) if the meter answered with a value that does not
        decode; the connection stays usable.
        """
        while True:
            frame = self.stream.next_frame()
            if frame is None:
                return NEED_DATA
            if not frame.from_meter:
                self.echoes += 1
                continue
            expected = self._expected
            if (
                expected is None
                or frame.function_code != expected.function_code
                or not address_matches(expected.address, frame.address)
            ):
                self.ignored += 1
                continue
            try:
                reply = decode_reply(frame, expected.version, self.zone)
            except Dlt645ValueError:
                self._expected = None
                raise
            if isinstance(reply, ReadReply) and expected.di is not None and reply.di != expected.di:
                self.ignored += 1
                continue
            self._expected = None
            return reply

    def follow_up(self, reply: ReadReply) -> ReadFollowUp:
        """The request for the frame after ``reply`` (when ``reply.follow_up``)."""
        seq = 1 if reply.seq is None else (reply.seq + 1) & 0xFF
        return ReadFollowUp(reply.address, reply.di, seq, reply.version)


class Slave(_Connection):
    """A meter's side of a bus: requests in, replies out.

    Every request on the bus is returned with its target address; the meter model decides
    whether it answers (a real meter stays silent for other addresses).
    """

    def __init__(
        self, version: Version = Version.V2007, zone: str = DEFAULT_METER_ZONE, preamble: int = 4
    ) -> None:
        super().__init__(version, zone, preamble)

    def next_event(self) -> Request | NeedData:
        """The next request on the bus, or ``NEED_DATA`` (other meters' replies are skipped)."""
        while True:
            frame = self.stream.next_frame()
            if frame is None:
                return NEED_DATA
            if frame.from_meter:
                self.ignored += 1
                continue
            return decode_request(frame, self.version, self.zone)

    def send(self, reply: Reply) -> bytes:
        """The bytes of ``reply`` (typed; ``AbnormalReply`` included)."""
        return encode_frame(encode_reply(reply, reply.version or self.version), self.preamble)


__all__ = ["NEED_DATA", "Master", "NeedData", "Slave"]
