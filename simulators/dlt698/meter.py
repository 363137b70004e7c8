"""DL/T 698.45 meters: the ``protocols.dlt698`` server role bound to meter state.

One ``Server`` codec per bus hears every byte (DL/T 645 and Modbus frames are noise to it) and
yields each request with its target address; this module answers as a meter's firmware would:

- another meter's address: silence; wildcard: every matching meter answers (they garble);
  broadcast: a broadcast time (4000 method 127) is applied, nothing is answered;
- CONNECT: public association always; password association when the password matches the
  meter's level-02 password (else result 1, password error); RELEASE closes it;
- GET Normal/NormalList: values from ``protocols.dlt698.objects`` built from the meter's state
  (energy, voltage, current, power, power factor, frequency, clock, address, status words, event
  counts; attribute 3, Scaler_Unit, of the numeric ones); anything else gets DAR 6 (absent);
- GET Record (``simulators.dlt698.records``): the daily freeze 5004 (Selector1 on the freeze
  time 2021, Selector2 ranges, Selector9/10 last records) and the 3011/301B/301C event records
  (Selector9/10); with ``block_rows`` set, a longer answer is split into GET-Next blocks the
  client asks for in turn;
- SET 4000 (clock) and ACTION 8000 129/130 (trip/close), 8001 127/128 (keep power), 4000 127
  (time): only inside a password association or as a secured request (DAR 15 otherwise), and
  not after the request's time tag has expired (DAR 32); a trip under keep-power gets DAR 255;
- a request that does not decode gets an ERROR-Response; a secured request whose MAC fails a
  SECURITY-Response with DAR 23.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any

from protocols.dlt698 import apdu as A
from protocols.dlt698.axdr import Data
from protocols.dlt698.connection import NEED_DATA, Incoming, Server
from protocols.dlt698.descriptors import (
    OAD,
    DataType,
    DateTimeS,
    ScalerUnit,
)
from protocols.dlt698.frame import AddressType
from protocols.dlt698.objects import (
    EVENT_COUNT_ATTRIBUTE,
    find_object,
)
from protocols.dlt698.security import ServerSecurity
from protocols.dlt698.values import encode_value, status_words
from simulators.bus import Answer
from simulators.dlt698 import records
from simulators.dlt698.records import COVERS, DAR_ABSENT
from simulators.line import LineSettings
from simulators.meter import Control, Meter, Outcome
from simulators.readings import all_values

T = DataType
DAR_UNAUTHORISED, DAR_OTHER, DAR_NOT_FRAGMENTING = 15, 255, 11
DAR_TIME_TAG = 32  # "时间标签无效": the request arrived after its time tag allowed
_TI_SECONDS = {0: 1, 1: 60, 2: 3600, 3: 86400}
_ACTIONS = {
    (0x8000, 129): Control.TRIP,
    (0x8000, 130): Control.CLOSE,
    (0x8001, 127): Control.KEEP_POWER,
    (0x8001, 128): Control.KEEP_POWER_RELEASE,
}


class Dlt698Listener:
    """The DL/T 698.45 meters of one bus, answering through one server codec."""

    def __init__(
        self,
        meters: Iterable[Meter],
        security: ServerSecurity | None = None,
        fragment_size: int = 512,
        block_rows: int | None = None,
    ) -> None:
        self._server = Server(security, preamble=0, fragment_size=fragment_size)
        self.block_rows = block_rows  # records per GET-Next block (None: never split)
        self._blocks: dict[str, list[A.ResultRecord]] = {}  # meter → blocks still to send
        self._meters: dict[str, Meter] = {}
        self._associations: dict[str, int] = {}  # meter address → mechanism of its association
        self._fragmenting: Meter | None = None
        self.line: LineSettings | None = None  # its meters' serial settings (None: the bus's)
        for meter in meters:
            self.add(meter)

    def add(self, meter: Meter) -> None:
        """Put a meter on the line."""
        self._meters[meter.address] = meter

    def meters(self) -> Iterable[Meter]:
        """Every meter of this listener."""
        return self._meters.values()

    @property
    def dropped_bytes(self) -> int:
        """Line bytes the codec skipped as noise (DL/T 645 and Modbus traffic included)."""
        return self._server.dropped_bytes

    def feed(self, data: bytes, ts: float) -> list[Answer]:
        """Bytes from the client in; answers of the addressed meters out."""
        self._server.receive_data(data)
        answers: list[Answer] = []
        while (incoming := self._server.next_event()) is not NEED_DATA:
            answers += self._dispatch(incoming, ts)
        more = self._server.data_to_send()  # the next fragment after a confirm
        if more and self._fragmenting is not None:
            answers.append(Answer(self._fragmenting, more))
        return answers

    def _targets(self, incoming: Incoming, ts: float) -> list[Meter]:
        address = incoming.server
        if address.kind is AddressType.SINGLE:
            meter = self._meters.get(address.address)
            return [meter] if meter is not None and meter.answers(ts) else []
        return [m for m in self._meters.values() if address.matches(m.address) and m.answers(ts)]

    def _dispatch(self, incoming: Incoming, ts: float) -> list[Answer]:
        targets = self._targets(incoming, ts)
        if incoming.server.kind is AddressType.BROADCAST:
            request = incoming.request
            if (
                isinstance(request, A.ActionRequestNormal)
                and request.parameter.type is T.DATE_TIME_S
            ):
                when = request.parameter.value.to_datetime()
                for meter in targets:
                    if when is not None and (request.omd.oi, request.omd.method) == (0x4000, 127):
                        meter.set_time(ts, when)
            return []
        answers = []
        for meter in targets:
            response = self.respond(meter, incoming, ts)
            if response is None:
                continue
            wire = self._server.respond(meter.address, incoming, response)
            if self._server.fragments_pending(meter.address):
                self._fragmenting = meter
            answers.append(Answer(meter, wire, self._wrong(meter, incoming, response)))
        return answers

    def _wrong(self, meter: Meter, incoming: Incoming, response: A.Response) -> Callable[[], bytes]:
        def build() -> bytes:
            digits = meter.address
            wrong = digits[:-1] + str((int(digits[-1]) + 1) % 10)
            return self._server.respond(wrong, incoming, response)

        return build

    # -- services ------------------------------------------------------------------------------
    def respond(self, meter: Meter, incoming: Incoming, ts: float) -> A.Response | None:
        """What ``meter`` answers to ``incoming`` at ``ts`` (None: no answer)."""
        request = incoming.request
        if request is None:
            return A.ErrorResponse(0, 1)  # APDU cannot be parsed (or its MAC failed)
        if isinstance(request, A.ConnectRequest):
            return self._connect(meter, request)
        if isinstance(request, A.ReleaseRequest):
            self._associations.pop(meter.address, None)
            return A.ReleaseResponse(request.piid, 0)
        if isinstance(request, A.GetRequestNormal):
            return A.GetResponseNormal(request.piid, self.result(meter, request.oad, ts))
        if isinstance(request, A.GetRequestNormalList):
            results = tuple(self.result(meter, oad, ts) for oad in request.oads)
            return A.GetResponseNormalList(request.piid, results)
        if isinstance(request, A.GetRequestRecord):
            return self._split(meter, request.piid, self.records(meter, request, ts))
        if isinstance(request, A.GetRequestNext):
            return self._next_block(meter, request)
        allowed = incoming.secured is not None or self._associations.get(meter.address) == 1
        expired = _expired(getattr(request, "time_tag", None), meter, ts)
        if isinstance(request, A.SetRequestNormal):
            dar = DAR_UNAUTHORISED if not allowed else DAR_TIME_TAG if expired else 0
            dar = dar or self._set(meter, request, ts)
            return A.SetResponseNormal(request.piid, request.oad, dar)
        if isinstance(request, A.ActionRequestNormal):
            dar = DAR_UNAUTHORISED if not allowed else DAR_TIME_TAG if expired else 0
            dar = dar or self._action(meter, request, ts)
            return A.ActionResponseNormal(request.piid, request.omd, dar)
        return None  # REPORT/LINK answers: nothing to say

    def _split(self, meter: Meter, piid: int, result: A.ResultRecord) -> A.Response:
        """The whole record, or its first GET-Next block when it has more than block_rows."""
        size = self.block_rows
        self._blocks.pop(meter.address, None)
        if size is None or result.rows is None or len(result.rows) <= size:
            return A.GetResponseRecord(piid, result)
        rows = result.rows
        blocks = [
            A.ResultRecord(result.oad, result.columns, rows[i : i + size])
            for i in range(0, len(rows), size)
        ]
        self._blocks[meter.address] = blocks[1:]
        return A.GetResponseNext(piid, False, 1, 2, (blocks[0],))

    def _next_block(self, meter: Meter, request: A.GetRequestNext) -> A.GetResponseNext:
        """Block ``last_block + 1`` of the record being split (DAR 11 if none is)."""
        blocks = self._blocks.get(meter.address)
        if not blocks:
            return A.GetResponseNext(request.piid, True, 0, 0, (), DAR_NOT_FRAGMENTING)
        block = blocks.pop(0)
        if not blocks:
            del self._blocks[meter.address]
        return A.GetResponseNext(request.piid, not blocks, request.last_block + 1, 2, (block,))

    def _connect(self, meter: Meter, request: A.ConnectRequest) -> A.ConnectResponse:
        mechanism = request.mechanism
        result = 0
        if mechanism.kind == 1 and mechanism.password != meter.spec.passwords.get(2):
            result = 1  # password error
        elif mechanism.kind in (2, 3):
            result = 2  # no ESAM in this simulator: symmetric decryption error
        if result == 0:
            self._associations[meter.address] = mechanism.kind
        return A.ConnectResponse(
            request.piid,
            A.FactoryVersion(),
            request.version,
            request.protocol_conformance,
            request.function_conformance,
            min(request.send_max, 512),
            min(request.receive_max, 512),
            1,
            min(request.apdu_max, 2000),
            request.timeout,
            result,
        )

    def _set(self, meter: Meter, request: A.SetRequestNormal, ts: float) -> int:
        if request.oad == OAD(0x4000, 2) and request.value.type is T.DATE_TIME_S:
            when = request.value.value.to_datetime()
            if when is None:
                return 8  # out of range
            meter.set_time(ts, when)
            return 0
        return 3  # read-only for this simulator

    def _action(self, meter: Meter, request: A.ActionRequestNormal, ts: float) -> int:
        key = (request.omd.oi, request.omd.method)
        if key == (0x4000, 127) and request.parameter.type is T.DATE_TIME_S:
            when = request.parameter.value.to_datetime()
            if when is None:
                return 8
            meter.set_time(ts, when)
            return 0
        action = _ACTIONS.get(key)
        if action is None:
            return DAR_ABSENT
        if action is Control.CLOSE and _close_allowed(request.parameter):
            action = Control.CLOSE_ALLOWED
        outcome = meter.control(ts, action)
        return {Outcome.OK: 0, Outcome.REFUSED: DAR_OTHER}.get(outcome, DAR_UNAUTHORISED)

    # -- attribute values ----------------------------------------------------------------------
    def result(self, meter: Meter, oad: OAD, ts: float) -> A.ResultNormal:
        """One GET result: the value or DAR 6."""
        data = self.read(meter, oad, ts)
        return A.ResultNormal(oad, data) if data is not None else A.ResultNormal(oad, None, 6)

    def read(self, meter: Meter, oad: OAD, ts: float) -> Data | None:
        """The Data of attribute ``oad`` (None: the meter has no such object)."""
        if oad.oi in (0x3011, *COVERS) and oad.attribute == EVENT_COUNT_ATTRIBUTE:
            return Data(T.LONG_UNSIGNED, min(len(records.event_records(meter, oad.oi, ts)), 0xFFFF))
        row = find_object(oad.oi)
        if row is not None and oad.attribute == 3 and row.unit_code is not None:
            return Data(T.SCALER_UNIT, ScalerUnit(row.scaler, row.unit_code))
        if row is None or oad.attribute != 2 or row.layout == "record":
            return None
        if oad.oi == 0x2014:
            words = status_words(meter.status_words(ts))
            return words if not oad.index else words.value[oad.index - 1]
        if oad.oi in (0x4001, 0x4002):
            return Data(T.OCTET_STRING, bytes.fromhex(meter.address))
        if oad.oi == 0x4000:
            local = meter.meter_time(ts).replace(microsecond=0)
            return Data(T.DATE_TIME_S, DateTimeS.of(local))
        source: dict[str, Any] = dict(all_values(meter, ts, 1))
        tan_phi = math.tan(math.acos(meter.spec.profile.power_factor))
        imp, exp = meter.registered(ts)
        for n in range(4):
            source[f"energy.reactive.combined1.t{n + 1}"] = imp[n] * tan_phi
            source[f"energy.reactive.combined2.t{n + 1}"] = exp[n] * tan_phi
        try:
            return encode_value(oad, source)
        except (KeyError, IndexError):
            return None

    # -- records (simulators.dlt698.records) --------------------------------------------------
    def records(self, meter: Meter, request: A.GetRequestRecord, ts: float) -> A.ResultRecord:
        """The rows ``request`` selects of a daily freeze or an event record."""
        return records.records(meter, request, ts)


def _expired(tag: A.TimeTag | None, meter: Meter, ts: float) -> bool:
    """Whether a request's time tag (send time + allowed delay, meter-local) has passed."""
    if tag is None:
        return False
    sent = tag.send_time.to_datetime()
    unit = _TI_SECONDS.get(tag.delay.unit)
    if sent is None or unit is None:
        return True  # an impossible tag is an invalid one
    deadline = sent + timedelta(seconds=unit * tag.delay.interval)
    return meter.meter_time(ts) > deadline


def _close_allowed(parameter: Data) -> bool:
    """8000 method 130 parameter: array of structure {relay OAD, command enum (0 allowed)}."""
    try:
        unit = parameter.value[0].value
        return bool(unit[1].type is T.ENUM and unit[1].value == 0)
    except (TypeError, IndexError, AttributeError):
        return False
