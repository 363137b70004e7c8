"""The meters' side of a DL/T 698.45 bus: requests in, responses out (fragmented when large)."""

from __future__ import annotations

from dataclasses import dataclass

from protocols.dlt698 import apdu as A
from protocols.dlt698.connection.base import (
    DAR_SECURITY_FAILED,
    DEFAULT_FRAGMENT,
    NEED_DATA,
    Connection,
    NeedData,
)
from protocols.dlt698.decoder import decode_apdu
from protocols.dlt698.encoder import encode_apdu
from protocols.dlt698.errors import Dlt698Error
from protocols.dlt698.frame import (
    FUNCTION_DATA,
    FUNCTION_LINK,
    Fragment,
    FragmentType,
    Frame,
    ServerAddress,
    control_byte,
    encode_frame,
)
from protocols.dlt698.security import ServerSecurity


@dataclass(frozen=True, slots=True)
class Incoming:
    """A request heard on the bus: its target, client address and the (unwrapped) APDU.

    ``request`` is ``None`` when the APDU did not decode (``error`` says why): a meter answers
    that with an ERROR-Response.  ``secured`` keeps the SECURITY-Request it came in.
    """

    server: ServerAddress
    client: int
    request: A.Request | None
    secured: A.SecurityRequest | None = None
    error: str = ""


class Server(Connection):
    """The meters' side of a bus: requests in, responses out (fragmented when large)."""

    def __init__(
        self,
        security: ServerSecurity | None = None,
        preamble: int = 0,
        fragment_size: int = DEFAULT_FRAGMENT,
    ) -> None:
        super().__init__(preamble)
        self.security = security
        self.fragment_size = fragment_size
        self._pending: dict[str, list[bytes]] = {}  # server address → fragments still to send
        self._sent: dict[str, int] = {}

    def next_event(self) -> Incoming | NeedData:
        """The next request on the bus, or ``NEED_DATA`` (meters' own frames are skipped).

        Fragment confirmations are handled here: the next fragment is queued on
        ``data_to_send``.
        """
        while True:
            frame = self.stream.next_frame()
            if frame is None:
                return NEED_DATA
            if frame.from_server:
                self.ignored += 1
                continue
            if frame.fragment is not None and frame.fragment.kind is FragmentType.CONFIRM:
                self._continue(frame)
                continue
            if frame.server_started:  # the client's answers to REPORT/LINK
                self.ignored += 1
                continue
            return self._incoming(frame)

    def _incoming(self, frame: Frame) -> Incoming:
        try:
            request = decode_apdu(frame.apdu)
        except Dlt698Error as exc:
            return Incoming(frame.server, frame.client, None, error=str(exc))
        secured = None
        if isinstance(request, A.SecurityRequest):
            secured = request
            if self.security is None:
                return Incoming(frame.server, frame.client, None, secured, "no security service")
            try:
                request = decode_apdu(self.security.open(frame.server.address, request))
            except Dlt698Error as exc:
                return Incoming(frame.server, frame.client, None, secured, str(exc))
        return Incoming(frame.server, frame.client, request, secured)  # type: ignore[arg-type]

    def respond(self, meter: str, incoming: Incoming, response: A.Response) -> bytes:
        """The bytes meter ``meter`` sends for ``response`` (secured and fragmented as needed)."""
        raw = encode_apdu(response)
        if incoming.secured is not None:
            if self.security is None or isinstance(response, A.ErrorResponse):
                raw = encode_apdu(A.SecurityResponse(b"", None, False, DAR_SECURITY_FAILED))
            else:
                raw = encode_apdu(self.security.seal(meter, incoming.secured, raw))
        address = ServerAddress(meter)
        size = self.fragment_size
        if len(raw) <= size:
            return self._frame(address, incoming.client, raw)
        parts = [raw[i : i + size] for i in range(0, len(raw), size)]
        self._pending[meter] = parts
        self._sent[meter] = 0
        return self._frame(address, incoming.client, parts[0], Fragment(0, FragmentType.FIRST))

    def fragments_pending(self, meter: str) -> bool:
        """Whether ``meter`` still has fragments of a response to send."""
        return bool(self._pending.get(meter))

    def report(self, meter: str, notification: A.ReportNotification | A.LinkRequest) -> bytes:
        """A frame meter ``meter`` starts itself (REPORT-Notification, LINK-Request)."""
        function = FUNCTION_LINK if isinstance(notification, A.LinkRequest) else FUNCTION_DATA
        control = control_byte(True, True, function)
        frame = Frame(control, ServerAddress(meter), encode_apdu(notification))  # C = 83H/81H
        return encode_frame(frame, self.preamble)

    def _continue(self, frame: Frame) -> None:
        meter = frame.server.address
        parts = self._pending.get(meter)
        assert frame.fragment is not None
        if parts is None or frame.fragment.number != self._sent[meter]:
            self.ignored += 1
            return
        n = self._sent[meter] + 1
        self._sent[meter] = n
        kind = FragmentType.LAST if n == len(parts) - 1 else FragmentType.MIDDLE
        if kind is FragmentType.LAST:
            del self._pending[meter]
        address = ServerAddress(meter)
        self._out += self._frame(address, frame.client, parts[n], Fragment(n, kind))

    def _frame(
        self, address: ServerAddress, client: int, apdu: bytes, fragment: Fragment | None = None
    ) -> bytes:
        frame = Frame(control_byte(True, False), address, apdu, client, fragment)  # C = C3H
        return encode_frame(frame, self.preamble)


__all__ = ["Incoming", "Server"]
