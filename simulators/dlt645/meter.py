"""DL/T 645 meters (2007 and 1997): the ``protocols.dlt645`` slave role bound to meter state.

One ``Slave`` codec per version per bus hears every byte (as every meter's UART does) and yields
each request with its target address; this module decides, per meter, as the firmware would:

- addressed to another meter: silence; broadcast (99…99): time sync applied, never a reply;
  ``AA`` wildcards: every matching meter answers (two talkers garble the line);
- read: the identifier's value from the data table (``data_id``), built from the meter's state;
  unknown identifiers, follow-ups and absent data get an abnormal reply (no requested data);
- write (date/time), remote control (relay, alarm, keep-power): password level, operator code and
  valid-until checks; a bad password or an unauthorised command gets an abnormal reply
  (password error / unauthorised), a refused command (trip under keep-power, expired) other-error.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable
from datetime import date, datetime, time
from typing import Any

from protocols.dlt645 import (
    BROADCAST,
    NEED_DATA,
    AbnormalReply,
    AddressReply,
    Authenticate,
    BaudAck,
    BroadcastTimeSync,
    ChangeBaud,
    ControlAck,
    ControlAction,
    DataId,
    Freeze,
    FreezeAck,
    Function,
    InvalidateAuthentication,
    ReadAddress,
    ReadBack,
    ReadData,
    ReadFollowUp,
    RemoteControl,
    Reply,
    Request,
    SecuredControl,
    SecuredWrite,
    Slave,
    Version,
    WriteAck,
    WriteData,
    address_matches,
    error_byte,
    find_data_id,
    security_word,
)
from protocols.dlt645.control import CODES
from protocols.dlt645.layouts import EventRecord, Group, Record
from protocols.model import MeterTime
from simulators.bus import Answer
from simulators.dlt645.reads import answer_follow_up, answer_read
from simulators.dlt645.reads import fit as _fit
from simulators.esam import SoftwareEsam
from simulators.history import NoData, settlement_values
from simulators.line import LineSettings
from simulators.meter import Control, Cover, Meter, Outcome
from simulators.readings import all_values, energy_values

_ACTIONS = {
    ControlAction.TRIP: Control.TRIP,
    ControlAction.CLOSE_ALLOWED: Control.CLOSE_ALLOWED,
    ControlAction.CLOSE_DIRECT: Control.CLOSE,
    ControlAction.ALARM: Control.ALARM,
    ControlAction.ALARM_RELEASE: Control.ALARM_RELEASE,
    ControlAction.KEEP_POWER: Control.KEEP_POWER,
    ControlAction.KEEP_POWER_RELEASE: Control.KEEP_POWER_RELEASE,
}
# Named error bits differ per version (see protocols.dlt645.control.ERROR_BITS).
_NO_DATA = {Version.V2007: "no_requested_data", Version.V1997: "data_identifier_error"}
_PASSWORD = {Version.V2007: "password_error_or_unauthorised", Version.V1997: "password_error"}
_OTHER = {Version.V2007: "other_error", Version.V1997: "illegal_data"}
_BAUD = {Version.V2007: "baud_rate_cannot_change", Version.V1997: "bit3"}
_SECURED = {SecuredControl: Function.REMOTE_CONTROL, SecuredWrite: Function.WRITE}
_COVERS = {"events.meter_cover.record": Cover.METER, "events.terminal_cover.record": Cover.TERMINAL}
_DATE_KEYS = {"meter.date"}
_TIME_KEYS = {"meter.time"}


FollowUps = tuple[int, list[bytes], int]  # (identifier, value bytes per frame, next frame)


def protocol_version(protocol: str) -> Version:
    """``dlt645-2007`` / ``dlt645-1997`` → ``Version``."""
    return Version.V1997 if protocol.endswith("1997") else Version.V2007


class Dlt645Listener:
    """The DL/T 645 meters of one bus (one version), answering through one slave codec."""

    def __init__(self, version: Version, meters: Iterable[Meter], baud: int = 2400) -> None:
        self.version = version
        self.baud = baud
        self._slave = Slave(version, preamble=4)
        self.line: LineSettings | None = None  # its meters' serial settings (None: the bus's)
        self.follow_ups: dict[str, FollowUps] = {}  # a long reply's frames, per meter address
        self._meters: dict[str, Meter] = {}
        self._esams: dict[str, SoftwareEsam] = {}  # the ESAM personality, by meter address
        for meter in meters:
            self.add(meter)

    def add(self, meter: Meter) -> None:
        """Put a meter on the line."""
        self._meters[meter.address] = meter

    def add_esam(self, esam: SoftwareEsam) -> None:
        """Give the meter at ``esam.address`` an ESAM (plaintext control refused from now on)."""
        self._esams[esam.address] = esam

    def meters(self) -> Iterable[Meter]:
        """Every meter of this listener."""
        return self._meters.values()

    @property
    def dropped_bytes(self) -> int:
        """Line bytes the codec skipped as noise (Modbus traffic included)."""
        return self._slave.dropped_bytes

    def feed(self, data: bytes, ts: float) -> list[Answer]:
        """Bytes from the master in; answers of the addressed meters out."""
        self._slave.receive_data(data)
        answers: list[Answer] = []
        while (request := self._slave.next_event()) is not NEED_DATA:
            answers += self._dispatch(request, ts)
        return answers

    def _targets(self, address: str, ts: float) -> list[Meter]:
        meter = self._meters.get(address)
        if meter is not None:
            return [meter] if meter.answers(ts) and not meter.busy(ts) else []
        if "A" not in address:
            return []
        return [
            m
            for m in self._meters.values()
            if address_matches(address, m.address) and m.answers(ts) and not m.busy(ts)
        ]

    def _dispatch(self, request: Request, ts: float) -> list[Answer]:
        if request.address == BROADCAST:
            if isinstance(request, BroadcastTimeSync):
                for meter in self._meters.values():
                    if meter.answers(ts) and not meter.busy(ts):
                        meter.broadcast_time(ts, request.when)
            return []
        answers = []
        for meter in self._targets(request.address, ts):
            reply = self.reply(meter, request, ts)
            if reply is not None:
                answers.append(Answer(meter, self._slave.send(reply), self._wrong(reply)))
        return answers

    def _wrong(self, reply: Reply) -> Callable[[], bytes]:
        def build() -> bytes:
            digits = reply.address
            wrong = digits[:-1] + str((int(digits[-1]) + 1) % 10)
            return self._slave.send(dataclasses.replace(reply, address=wrong))

        return build

    def _abnormal(self, meter: Meter, function: Function, reasons: dict[Version, str]) -> Reply:
        reason = reasons[self.version]
        return AbnormalReply(
            meter.address, function, error_byte((reason,), self.version), (reason,), self.version
        )

    def reply(self, meter: Meter, request: Request, ts: float) -> Reply | None:
        """What ``meter`` answers to ``request`` at ``ts`` (None: no reply)."""
        v = self.version
        esam = self._esams.get(meter.address)
        if esam is not None and (secured := esam.reply(meter, request, ts)) is not None:
            return secured
        if isinstance(request, ReadData):
            return answer_read(self, meter, request, ts)
        if isinstance(request, ReadFollowUp):
            return answer_follow_up(self, meter, request)
        if isinstance(request, ReadAddress):
            return AddressReply(meter.address, v)
        if isinstance(request, RemoteControl):
            return self._control(meter, request, ts)
        if isinstance(request, WriteData):
            return self._write(meter, request, ts)
        if isinstance(request, BroadcastTimeSync):
            meter.broadcast_time(ts, request.when)
            return None
        if isinstance(request, Freeze):
            return FreezeAck(meter.address, v)
        if isinstance(request, ChangeBaud):
            if request.baud == self.baud:
                return BaudAck(meter.address, request.baud, v)
            return self._abnormal(meter, Function.CHANGE_BAUD, _BAUD)
        if isinstance(request, Authenticate | InvalidateAuthentication | ReadBack):  # no ESAM
            word = security_word(("other_error",))
            return AbnormalReply(meter.address, Function.SECURITY, word, ("other_error",), v)
        function = _SECURED.get(type(request)) or getattr(
            request, "function", Function.READ_FOLLOW_UP
        )
        if function is Function.UNKNOWN or function not in CODES[self.version]:
            return None  # a code this edition lacks (a 2007 frame to a 1997 meter): silence
        if function is Function.READ_FOLLOW_UP:
            return self._abnormal(meter, Function.READ_FOLLOW_UP, _NO_DATA)
        return self._abnormal(meter, function, _PASSWORD)  # clear meter, passwords … unauthorised

    def _authorise(self, meter: Meter, password: str, operator: str, need: int) -> Outcome:
        try:
            level, digits = int(password[:2]), password[2:]
        except ValueError:
            return Outcome.BAD_PASSWORD
        return meter.authorise(level, digits, operator, need)

    def _control(self, meter: Meter, request: RemoteControl, ts: float) -> Reply:
        if request.payload:  # ciphertext: this simulator has no ESAM
            return self._abnormal(meter, Function.REMOTE_CONTROL, _PASSWORD)
        outcome = self._authorise(
            meter, request.password, request.operator, meter.spec.control_level
        )
        if outcome is Outcome.OK:
            outcome = meter.control(ts, _ACTIONS[request.action], request.valid_until)
        if outcome is Outcome.OK:
            return ControlAck(meter.address, self.version)
        reasons = _OTHER if outcome is Outcome.REFUSED else _PASSWORD
        return self._abnormal(meter, Function.REMOTE_CONTROL, reasons)

    def _write(self, meter: Meter, request: WriteData, ts: float) -> Reply:
        outcome = self._authorise(meter, request.password, request.operator, meter.spec.write_level)
        if outcome is not Outcome.OK:
            return self._abnormal(meter, Function.WRITE, _PASSWORD)
        row = find_data_id(request.di, self.version)
        now = meter.meter_time(ts)
        if row is not None and row.key in _DATE_KEYS and isinstance(request.value, date):
            meter.set_time(ts, datetime.combine(request.value, now.time()))
        elif row is not None and row.key in _TIME_KEYS and isinstance(request.value, time):
            meter.set_time(ts, datetime.combine(now.date(), request.value))
        else:
            return self._abnormal(meter, Function.WRITE, _PASSWORD)
        return WriteAck(meter.address, self.version)

    # -- reads --------------------------------------------------------------------------------
    def read(self, meter: Meter, di: int, ts: float) -> dict[str, Any]:
        """The values of identifier ``di`` (keys as the data table names them)."""
        row = find_data_id(di, self.version)
        if row is None:
            raise NoData(di)
        layout = row.layout
        keys = [name for name, _ in layout.fields] if isinstance(layout, Group) else [row.key]
        source = self._source(
            meter, row, ts, energy_only=all(k.startswith("energy.") for k in keys)
        )
        if row.members and isinstance(layout, Group):
            return {name: _fit(sub, self._get(source, name), name) for name, sub in layout.fields}
        return {row.key: _fit(layout, self._get(source, row.key), row.key)}

    @staticmethod
    def _get(source: dict[str, Any], key: str) -> Any:
        if key not in source:
            raise NoData(key)
        return source[key]

    def _source(
        self, meter: Meter, row: DataId, ts: float, energy_only: bool = False
    ) -> dict[str, Any]:
        if row.period == "daily_frozen":
            return self._frozen_source(meter, row.index, ts)
        if row.period == "record":
            return self._record_source(meter, row, ts)
        if row.period == "settlement" and row.index:
            return settlement_values(meter, row.index, ts)
        if energy_only:  # the hot path of a polling sweep: no instantaneous values needed
            return dict(energy_values(meter, ts))
        values: dict[str, Any] = dict(all_values(meter, ts, 1))
        local = meter.meter_time(ts)
        values.update(
            {
                "meter.date": local.date(),
                "meter.time": local.time().replace(microsecond=0),
                "meter.datetime": MeterTime(local.replace(microsecond=0), meter.spec.zone),
                "meter.address": meter.address,
                "meter.number": meter.address,
                "temperature.meter": 25.0,
                "events.power_down.count": len(meter.power_downs(ts)),
                "events.meter_cover.count": len(meter.cover_records(Cover.METER, ts)),
                "events.terminal_cover.count": len(meter.cover_records(Cover.TERMINAL, ts)),
            }
        )
        for n, word in enumerate(meter.status_words(ts), start=1):
            values[f"status.word{n}"] = word
        balance = meter.balance(ts)
        if balance is not None:
            price = meter.prepay.prices[2] if meter.prepay else 1.0
            values["prepay.balance.money"] = max(balance, 0.0)
            values["prepay.overdraft.money"] = max(-balance, 0.0)
            values["prepay.balance.energy"] = max(balance, 0.0) / price
            values["prepay.overdraft.energy"] = max(-balance, 0.0) / price
        return values

    def _frozen_source(self, meter: Meter, index: int, ts: float) -> dict[str, Any]:
        frozen = meter.frozen(index, ts)
        if frozen is None:
            raise NoData(index)
        tan_phi = math.tan(math.acos(meter.spec.profile.power_factor))
        out: dict[str, Any] = {"freeze.time": frozen.local_time}
        for prefix, vec, k in (
            ("energy.active.import", frozen.import_kwh, 1.0),
            ("energy.active.export", frozen.export_kwh, 1.0),
            ("energy.reactive.combined1", frozen.import_kwh, tan_phi),
            ("energy.reactive.combined2", frozen.export_kwh, tan_phi),
        ):
            out[f"{prefix}.total"] = sum(vec) * k
            for n in range(4):
                out[f"{prefix}.t{n + 1}"] = vec[n] * k
        return out

    def _record_source(self, meter: Meter, row: DataId, ts: float) -> dict[str, Any]:
        n = row.index
        if row.key == "events.power_down.record":
            downs = meter.power_downs(ts)
            if n > len(downs):
                raise NoData(row.di)
            start, end = downs[n - 1]
            return {row.key: EventRecord(self._mt(meter, start), self._mt(meter, end), {})}
        cover = _COVERS.get(row.key)
        if cover is None:
            raise NoData(row.di)
        records = meter.cover_records(cover, ts)
        if n > len(records):
            raise NoData(row.di)
        rec = records[n - 1]
        values: dict[str, Any] = {}
        assert isinstance(row.layout, Record)
        for label, instant in (("before", rec.start), ("after", rec.end)):
            imp, exp = (
                meter.registered(instant) if instant is not None else ((0.0,) * 4, (0.0,) * 4)
            )
            raw = {
                "energy.active.import.total": sum(imp),
                "energy.active.export.total": sum(exp),
            }
            for name, sub in row.layout.fields:
                if name.endswith(f".{label}"):
                    base = name[: -len(label) - 1]
                    values[name] = _fit(sub, raw.get(base, 0.0), "energy.")
        record = EventRecord(self._mt(meter, rec.start), self._mt(meter, rec.end), values)
        return {row.key: record}

    @staticmethod
    def _mt(meter: Meter, instant: float | None) -> MeterTime | None:
        if instant is None:
            return None
        return MeterTime(meter.meter_time(instant).replace(microsecond=0), meter.spec.zone)
