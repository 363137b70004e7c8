"""One DL/T 698.45 bus exchange: fragment confirmations and a CONNECT-and-resend inside it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from gateway.polling.dlt698.items import DAR_UNAUTHORISED
from gateway.polling.driver import Undecodable
from protocols.dlt698 import apdu as A
from protocols.dlt698.axdr import Data
from protocols.dlt698.connection import NEED_DATA, Client
from protocols.dlt698.descriptors import DataType, DateTimeS
from protocols.dlt698.errors import Dlt698ValueError
from protocols.dlt698.frame import BROADCAST, encode_frame
from protocols.dlt698.objects import BROADCAST_TIME

if TYPE_CHECKING:
    from gateway.polling.dlt698.driver import Dlt698Driver


@dataclass
class Dlt698Exchange:
    """One request and its answer: fragment confirmations and a CONNECT-and-resend included.

    ``master`` is named as the worker's line-quality hook expects."""

    request: bytes
    reply_len: int
    master: Client
    build: Callable[[Client], bytes]  # the read itself (sent again after a CONNECT)
    driver: Dlt698Driver
    connecting: bool = False  # the request on the wire is a CONNECT
    may_connect: bool = True  # a refusal for want of an association may CONNECT once
    expects_reply: bool = True
    unsolicited: int = 0  # REPORT / LINK frames meters sent on their own during the exchange
    _out: bytearray = field(default_factory=bytearray)

    def feed(self, data: bytes) -> Any | None:
        self.master.receive_data(data)
        while True:
            try:
                event = self.master.next_event()
            except Dlt698ValueError as exc:  # a whole frame from the meter: alive, APDU unusable
                raw = encode_frame(exc.frame, 0).hex(" ") if exc.frame is not None else ""
                return Undecodable(str(exc), raw)
            if event is NEED_DATA:
                return None
            if isinstance(event, A.ReportNotification | A.LinkRequest):
                # a meter speaking on its own (REPORT, LINK login/heartbeat): rare on RS-485,
                # and the event does not say which meter, so it is counted and not answered
                self.unsolicited += 1
                continue
            if self.connecting:
                if not isinstance(event, A.ConnectResponse) or event.result != 0:
                    return event  # the association was refused: decode says so
                self.driver.associated(event.timeout)
                self.connecting = False
                self._out += self.build(self.master)
                return None
            if self.may_connect and unauthorised(event):
                self.driver.association_required = True
                self._connect()
                return None
            return event

    def _connect(self, password: str | None = None) -> None:
        self.connecting, self.may_connect = True, False
        piid = self.driver.next_piid()
        mechanism = A.PUBLIC if password is None else A.ConnectMechanism(1, password=password)
        request = A.ConnectRequest(piid, mechanism=mechanism)
        self._out += self.master.connect(self.driver.meter.address, request)

    @classmethod
    def associating(
        cls,
        driver: Dlt698Driver,
        build: Callable[[Client], bytes],
        reply_len: int,
        password: str | None = None,
    ) -> Dlt698Exchange:
        """An exchange that opens with a CONNECT (public, or password ``password``) and sends
        ``build`` once the meter accepts it."""
        ex = cls(b"", reply_len, Client(), build, driver, may_connect=False)
        ex._connect(password)
        ex.request = ex.data_to_send()
        return ex

    def data_to_send(self) -> bytes:
        """Bytes to write before the answer can come (fragment confirms, CONNECT, resend)."""
        out = bytes(self._out) + self.master.data_to_send()
        self._out.clear()
        return out


def unauthorised(event: Any) -> bool:
    """Whether a reply refuses for want of an application association."""
    if isinstance(event, A.ErrorResponse):
        return True
    results: tuple[Any, ...] = ()
    if isinstance(event, A.GetResponseNormal | A.GetResponseRecord):
        results = (event.result,)
    elif isinstance(event, A.GetResponseNormalList):
        results = event.results
    return any(r.dar == DAR_UNAUTHORISED for r in results)


@dataclass
class BroadcastExchange:
    """A broadcast request (no answer: the worker waits for it to leave the wire)."""

    request: bytes
    reply_len: int = 0
    expects_reply: bool = False

    def feed(self, data: bytes) -> Any | None:
        return None


def broadcast_time(when_local: datetime) -> BroadcastExchange:
    """ACTION 4000 method 127 (broadcast time) to every meter (AF C0, SA AA), in plaintext."""
    data = Data(DataType.DATE_TIME_S, DateTimeS.of(when_local.replace(microsecond=0)))
    return BroadcastExchange(Client().action(BROADCAST, BROADCAST_TIME, data))


BROADCAST_FRAME_BYTES = len(broadcast_time(datetime(2000, 1, 1)).request)
"""Bytes of a broadcast-time frame (for the wire-time correction of the time it carries)."""
