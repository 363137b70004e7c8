"""The gateway's side of a DL/T 698.45 bus: requests out, responses in.

State machine: a request arms the expected answer (server address, PIID sequence number,
response tag).  Own-request echoes (DIR 0), answers from other addresses, with another PIID or
tag are skipped and counted (``ignored``).  Frames a meter starts itself (PRM 0: REPORT,
LINK) are returned as events whenever they come.  A fragmented answer is reassembled: each
fragment but the last queues a confirmation (``data_to_send``) and ``next_event`` returns
``NEED_DATA`` until the last one (at most ``MAX_REASSEMBLED`` bytes).  A secured request
(``secured=True`` with a ``SecurityService``) is wrapped; its answer is verified and unwrapped
before it is returned, so the caller sees the same typed response either way — except a refusal
(a SECURITY-Response carrying a DAR), which is returned as that ``SecurityResponse``.  After a
timeout the caller calls ``abandon()``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from protocols.dlt698 import apdu as A
from protocols.dlt698.axdr import Data
from protocols.dlt698.connection.base import MAX_REASSEMBLED, NEED_DATA, Connection, NeedData
from protocols.dlt698.decoder import decode_apdu
from protocols.dlt698.descriptors import CSD, OAD, OMD
from protocols.dlt698.encoder import encode_apdu
from protocols.dlt698.errors import (
    Dlt698EncodeError,
    Dlt698Error,
    Dlt698SecurityError,
    Dlt698ValueError,
)
from protocols.dlt698.frame import (
    FUNCTION_DATA,
    FUNCTION_LINK,
    AddressType,
    Fragment,
    FragmentType,
    Frame,
    ServerAddress,
    control_byte,
    encode_frame,
    server_address,
)
from protocols.dlt698.security import SecurityService
from protocols.dlt698.selection import RSD


@dataclass(frozen=True, slots=True)
class _Expected:
    server: ServerAddress
    piid: int
    tag: int
    secured: A.SecurityRequest | None


@dataclass
class _Reassembly:
    parts: list[bytes] = field(default_factory=list)
    next_number: int = 0
    size: int = 0


class Client(Connection):
    """The gateway's side of a bus: requests out, responses in."""

    def __init__(
        self,
        client_address: int = 0,
        security: SecurityService | None = None,
        preamble: int = 4,
    ) -> None:
        super().__init__(preamble)
        self.client_address = client_address
        self.security = security
        self._expected: _Expected | None = None
        self._piid = 0
        self._fragments: _Reassembly | None = None

    @property
    def awaiting_reply(self) -> bool:
        """Whether a sent request still waits for its answer."""
        return self._expected is not None

    def next_piid(self) -> int:
        """A fresh PIID (sequence 0-63, normal priority)."""
        self._piid = (self._piid + 1) & 0x3F
        return self._piid

    # -- requests ------------------------------------------------------------------------------
    def get(self, server: str | ServerAddress, oad: OAD, secured: bool = False) -> bytes:
        """Read one attribute."""
        return self.send(server, A.GetRequestNormal(self.next_piid(), oad), secured)

    def get_list(
        self, server: str | ServerAddress, oads: tuple[OAD, ...], secured: bool = False
    ) -> bytes:
        """Read several attributes at once."""
        return self.send(server, A.GetRequestNormalList(self.next_piid(), tuple(oads)), secured)

    def get_record(
        self,
        server: str | ServerAddress,
        oad: OAD,
        rsd: RSD,
        columns: tuple[CSD, ...] = (),
        secured: bool = False,
    ) -> bytes:
        """Read records (frozen data, events) selected by ``rsd``."""
        request = A.GetRequestRecord(self.next_piid(), oad, rsd, tuple(columns))
        return self.send(server, request, secured)

    def get_next(
        self, server: str | ServerAddress, last_block: int, secured: bool = False
    ) -> bytes:
        """Ask for the block after ``last_block`` of a split GET response."""
        return self.send(server, A.GetRequestNext(self.next_piid(), last_block), secured)

    def set(
        self, server: str | ServerAddress, oad: OAD, value: Data, secured: bool = False
    ) -> bytes:
        """Write one attribute."""
        return self.send(server, A.SetRequestNormal(self.next_piid(), oad, value), secured)

    def action(
        self, server: str | ServerAddress, omd: OMD, parameter: Data, secured: bool = False
    ) -> bytes:
        """Invoke one method."""
        return self.send(server, A.ActionRequestNormal(self.next_piid(), omd, parameter), secured)

    def connect(
        self, server: str | ServerAddress, request: A.ConnectRequest | None = None
    ) -> bytes:
        """Open an application association (public mechanism unless ``request`` says)."""
        return self.send(server, request or A.ConnectRequest(self.next_piid()))

    def release(self, server: str | ServerAddress) -> bytes:
        """Close the application association."""
        return self.send(server, A.ReleaseRequest(self.next_piid()))

    def report_response(self, server: str | ServerAddress, report: A.ReportNotification) -> bytes:
        """Acknowledge a REPORT-Notification (no answer is expected)."""
        oads = tuple(r.oad for r in report.results)
        ack = A.ReportResponse(report.piid & 0xBF, oads, report.records)
        return self._frame(server_address(server), encode_apdu(ack), server_started=True)

    def link_response(self, server: str | ServerAddress, response: A.LinkResponse) -> bytes:
        """Answer a meter's LINK-Request (no answer is expected)."""
        raw = encode_apdu(response)
        return self._frame(server_address(server), raw, server_started=True, function=FUNCTION_LINK)

    def send(self, server: str | ServerAddress, request: A.Request, secured: bool = False) -> bytes:
        """The bytes of ``request``; arms the answer it expects (none for broadcasts)."""
        address = server_address(server)
        raw = encode_apdu(request)
        wrapped: A.SecurityRequest | None = None
        if secured:
            if self.security is None:
                raise Dlt698EncodeError("a secured request needs a SecurityService")
            wrapped = self.security.wrap(address.address, raw)
            raw = encode_apdu(wrapped)
        piid = getattr(request, "piid", 0)
        if address.kind is AddressType.BROADCAST:
            self._expected = None
        else:
            self._expected = _Expected(address, piid & 0x3F, raw[0] | 0x80, wrapped)
        self._fragments = None
        return self._frame(address, raw, server_started=False)

    def _frame(
        self,
        address: ServerAddress,
        apdu: bytes,
        server_started: bool,
        function: int = FUNCTION_DATA,
        fragment: Fragment | None = None,
    ) -> bytes:
        control = control_byte(False, server_started, function)
        frame = Frame(control, address, apdu, self.client_address, fragment)
        return encode_frame(frame, self.preamble)

    def abandon(self) -> None:
        """Give up on the expected answer (a timeout) and drop what is buffered."""
        self._expected = None
        self._fragments = None
        self.stream.clear()

    # -- responses -----------------------------------------------------------------------------
    def next_event(self) -> A.Response | NeedData:
        """The answer to the last request, a report/LINK from a meter, or ``NEED_DATA``.

        ``Dlt698ValueError`` (with ``.frame``) if the meter answered with an APDU that does not
        decode; ``Dlt698SecurityError`` if a secured answer does not verify.  The connection
        stays usable either way.
        """
        while True:
            frame = self.stream.next_frame()
            if frame is None:
                return NEED_DATA
            if not frame.from_server:
                self.echoes += 1
                continue
            if frame.server_started:  # a meter reports or logs in on its own
                try:
                    return self._decode(frame, frame.apdu)  # type: ignore[return-value]
                except Dlt698Error:
                    self.ignored += 1
                    continue
            expected = self._expected
            if expected is None or not expected.server.matches(frame.server.address):
                self.ignored += 1
                continue
            apdu = self._reassemble(frame, expected)
            if apdu is None:
                continue
            if apdu[:1] != bytes((expected.tag,)) and apdu[:1] != b"\xee":
                self.ignored += 1
                continue
            response = self._decode(frame, apdu)
            if isinstance(response, A.SecurityResponse):
                if expected.secured is None or self.security is None:
                    self.ignored += 1
                    continue
                self._expected = None
                if response.dar is not None:  # the meter refused: an answer, not an error
                    return response
                plain = self.security.unwrap(frame.server.address, expected.secured, response)
                response = self._decode(frame, plain)
                inner = getattr(response, "piid", None)
                if inner is not None and inner & 0x3F != expected.piid:
                    raise Dlt698SecurityError("the secured answer belongs to another request")
                return response  # type: ignore[return-value]
            piid = getattr(response, "piid", None)
            if (
                piid is not None
                and piid & 0x3F != expected.piid
                and not isinstance(response, A.ErrorResponse)
            ):
                self.ignored += 1  # a late answer to an earlier request
                continue
            self._expected = None
            return response  # type: ignore[return-value]

    def _decode(self, frame: Frame, apdu: bytes) -> A.Apdu:
        try:
            return decode_apdu(apdu)
        except Dlt698Error as exc:
            self._expected = None
            raise Dlt698ValueError(str(exc), frame) from None

    def _reassemble(self, frame: Frame, expected: _Expected) -> bytes | None:
        fragment = frame.fragment
        if fragment is None:
            return frame.apdu
        state = self._fragments
        if fragment.kind is FragmentType.FIRST or state is None:
            if fragment.kind is not FragmentType.FIRST:
                self.ignored += 1
                return None
            state = self._fragments = _Reassembly()
        if fragment.number != state.next_number:
            self.ignored += 1  # a repeated fragment (our confirm got lost): confirm again
        else:
            state.parts.append(frame.apdu)
            state.size += len(frame.apdu)
            state.next_number = (state.next_number + 1) & 0xFFF
            if state.size > MAX_REASSEMBLED:  # a device that never sends its last fragment
                self._fragments = None
                self._expected = None
                raise Dlt698ValueError(
                    f"fragmented answer exceeds {MAX_REASSEMBLED} bytes; abandoned", frame
                )
        if fragment.kind is FragmentType.LAST:
            self._fragments = None
            return b"".join(state.parts)
        confirm = Fragment(fragment.number, FragmentType.CONFIRM)
        self._out += self._frame(expected.server, b"", server_started=False, fragment=confirm)
        return None


__all__ = ["Client"]
