"""The DL/T 645 driver: data identifiers (``protocols.dlt645``) as poller items.

Which identifiers each group reads (2007 / 1997)::

    energy   0001FF00 forward active total + tariffs (area total meters add 0002FF00 reverse)
             / 901F
    export   0002FF00 reverse active total + tariffs (rooftop PV; ``[schedule] export_minutes``)
             / 902F
    events   ``gateway.events.SWEEP_IDENTIFIERS``: the three event counters, status words 1, 3
             and 7, the meter's date and time; counters that went up (or open records) make
             the poller read the records ``gateway.events.records_to_read`` names  / none
    instant  0201FF00 voltages, 0202FF00 currents, 0203FF00 active power, 0206FF00 power
             factor, 02800002 frequency; customer meters add 02800001 neutral current
             (a single-phase bypass shows as live ≠ neutral; a meter without it refuses or
             stays silent once, and ``capability`` skips it for a day)   / B61F B62F B63F
    frozen   0506000n freeze time of the n-th last freeze, 0506010n forward active energy,
             with ``[schedule] frozen_export`` also 0506020n reverse active energy
             (2007 only: 1997 meters keep no daily freezes readable this way)
    settle   0001FF0n forward active total + tariffs of the n-th previous settlement period
             (n 1–12; with ``frozen_export`` also 0002FF0n); a meter without blocks: the
             members 000100 0n …                              / 941F, 981F (n 1–2) → 9410 …
    profile  060k0001 + NN + mm hh DD MM YY: up to NN load records of category k from a time
             (``ProfileItem``; long replies come in follow-up frames)  / none (1997)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any

from gateway.config import MeterConfig
from gateway.events import SWEEP_IDENTIFIERS, Counter, PollResult, record_identifiers
from gateway.polling.driver import (
    Group,
    MeterRefused,
    ReplyUndecodable,
    Undecodable,
    poll_result_of,
)
from protocols.dlt645 import (
    DATA_IDS,
    NEED_DATA,
    AbnormalReply,
    Master,
    ReadData,
    ReadReply,
    Request,
    StatusWord,
    Version,
    find_data_id,
)
from protocols.dlt645.data_ids import row_values
from protocols.dlt645.errors import Dlt645Error, Dlt645ValueError
from protocols.dlt645.frame import encode_frame
from protocols.dlt645.load_profile import CATEGORIES, ProfileRecord, profile_request
from protocols.model import MeterTime

_V7, _V9 = Version.V2007, Version.V1997
PLANS: dict[Version, dict[Group, tuple[int, ...]]] = {
    _V7: {
        Group.ENERGY: (0x0001FF00,),
        Group.EVENTS: SWEEP_IDENTIFIERS,
        Group.INSTANT: (0x0201FF00, 0x0202FF00, 0x0203FF00, 0x0206FF00, 0x02800002),
        Group.EXPORT: (0x0002FF00,),
    },
    _V9: {
        Group.ENERGY: (0x901F,),
        Group.EVENTS: (),
        Group.INSTANT: (0xB61F, 0xB62F, 0xB63F),
        Group.EXPORT: (0x902F,),
    },
}
AREA_TOTAL_ENERGY = {_V7: (0x0002FF00,), _V9: (0x902F,)}
# DL/T 645-2007 Appendix A, variable data: 02 80 00 01 neutral current (零线电流), XXX.XXX A
CUSTOMER_INSTANT = {_V7: (0x02800001,), _V9: ()}
COUNTERS = {
    Counter.METER_COVER: "events.meter_cover.count",
    Counter.TERMINAL_COVER: "events.terminal_cover.count",
    Counter.POWER_DOWN: "events.power_down.count",
}
FREEZE_TIME = 0x05060000
FROZEN_FORWARD = 0x05060100
FROZEN_REVERSE = 0x05060200
FRAME_OVERHEAD = 4 + 12 + 4  # preamble, header + control + length + checksum + end, DI
BLOCK_ALLOWANCE = 16  # tariff blocks may carry more tariffs than the table's four


def _quantity_index(version: Version) -> dict[str, int]:
    """Canonical quantity → the single-value identifier of its current value."""
    out: dict[str, int] = {}
    for di, row in DATA_IDS[version].items():
        if row.period == "current" and row.quantity and not row.is_block:
            out.setdefault(row.quantity, di)
    return out


_QUANTITY_DI = {v: _quantity_index(v) for v in Version}


def flatten(values: Any) -> dict[str, Any]:
    """Reply values with status words as integers plus the relay / keep-power states."""
    out: dict[str, Any] = {}
    for key, value in dict(values).items():
        if isinstance(value, StatusWord):
            out[key] = value.raw
            if value.number == 3:
                out["relay.state"] = "open" if value.raw & 0x10 else "closed"
                out["keep_power.state"] = "on" if value.raw & 0x1000 else "off"
        else:
            out[key] = value
    return out


@dataclass
class Dlt645Exchange:
    """One read of one identifier."""

    request: bytes
    reply_len: int
    master: Master
    expects_reply: bool = True

    def feed(self, data: bytes) -> Any | None:
        self.master.receive_data(data)
        try:
            event = self.master.next_event()
        except Dlt645ValueError as exc:  # a whole frame from the meter: alive, value unusable
            raw = encode_frame(exc.frame, 0).hex(" ") if exc.frame is not None else ""
            return Undecodable(str(exc), raw)
        return None if event is NEED_DATA else event


CONTROL_REPLY_ALLOWANCE = 16  # a control / write acknowledgement carries no more than this


def request_exchange(request: Request, version: Version, zone: str) -> Dlt645Exchange:
    """An exchange for any DL/T 645 request (commands); a broadcast expects no reply."""
    master = Master(version, zone)
    frame = master.send(request)
    di = getattr(request, "di", None)
    row = find_data_id(di, version) if isinstance(di, int) else None
    length = (row.length + (BLOCK_ALLOWANCE if row.is_block else 0)) if row else 0
    return Dlt645Exchange(
        frame,
        FRAME_OVERHEAD + max(length, CONTROL_REPLY_ALLOWANCE),
        master,
        expects_reply=master.awaiting_reply,
    )


class Dlt645Driver:
    """Reads one DL/T 645 meter (2007 or 1997)."""

    def __init__(self, meter: MeterConfig, zone: str, *, frozen_export: bool = False) -> None:
        self.meter = meter
        self.zone = zone
        self.frozen_export = frozen_export  # also the daily frozen reverse energy (PV)
        self.version = _V9 if meter.protocol == "dlt645-1997" else _V7
        self.supports_frozen = self.version is _V7

    def plan(self, group: Group) -> Sequence[int]:
        items = PLANS[self.version][group]
        if group is Group.ENERGY and self.meter.role == "area_total":
            items = items + AREA_TOTAL_ENERGY[self.version]
        if group is Group.INSTANT and self.meter.role == "customer":
            items = items + CUSTOMER_INSTANT[self.version]
        return items

    def items_for(self, quantities: Iterable[str]) -> Sequence[int]:
        index = _QUANTITY_DI[self.version]
        return list(dict.fromkeys(index[q] for q in quantities if q in index))

    def exchange(self, item: int | ProfileItem) -> Dlt645Exchange:
        if isinstance(item, ProfileItem):
            return self._profile_exchange(item)
        master = Master(self.version, self.zone)
        request = master.send(ReadData(self.meter.address, item, self.version))
        row = find_data_id(item, self.version)
        length = row.length + (BLOCK_ALLOWANCE if row.is_block else 0) if row else 200
        return Dlt645Exchange(request, FRAME_OVERHEAD + length, master)

    def decode(self, item: int | ProfileItem, outcome: Any) -> dict[str, Any]:
        if isinstance(outcome, Undecodable):
            raise ReplyUndecodable(f"{outcome.reason}; reply {outcome.raw}")
        if isinstance(outcome, AbnormalReply):
            reasons = ", ".join(outcome.reasons) or f"error 0x{outcome.error:02X}"
            raise MeterRefused(f"{self.meter.id}: {self.key(item)} refused ({reasons})")
        if not isinstance(outcome, ReadReply):
            raise MeterRefused(f"{self.meter.id}: unexpected reply {type(outcome).__name__}")
        if isinstance(item, ProfileItem):
            return profile_rows(outcome.values)
        return flatten(outcome.values)

    def poll_result(
        self, values: dict[str, Any], gateway_time: datetime, clock_synced: bool
    ) -> PollResult | None:
        counts = {c: values[k] for c, k in COUNTERS.items() if isinstance(values.get(k), int)}
        meter_time = None
        day, clock = values.get("meter.date"), values.get("meter.time")
        if isinstance(day, date) and isinstance(clock, time):
            meter_time = MeterTime(datetime.combine(day, clock), self.zone)
        return poll_result_of(
            values,
            gateway_time,
            clock_synced,
            counts=counts,
            meter_time=meter_time,
            identity=self.meter.address,
        )

    def record_items(self, plan: dict[Counter, list[int]]) -> Sequence[int]:
        return record_identifiers(plan)

    def records(
        self, plan: dict[Counter, list[int]], by_item: dict[Any, dict[str, Any]]
    ) -> dict[Counter, dict[int, Any]]:
        out: dict[Counter, dict[int, Any]] = {}
        for counter, numbers in plan.items():
            for n in numbers:
                values = by_item.get(counter.record_di(n))
                record = next(iter(values.values()), None) if values else None
                if record is not None:
                    out.setdefault(counter, {})[n] = record
        return out

    def key(self, item: int | ProfileItem) -> str:
        return self.version.di_hex(item.di if isinstance(item, ProfileItem) else item)

    def quantities(self, item: int | ProfileItem) -> tuple[str, ...]:
        if isinstance(item, ProfileItem):
            return ()  # the same registers as the current values: nothing of those is lost
        row = find_data_id(item, self.version)
        if row is None:
            return ()
        if row.members:
            return tuple(m.key for m in row.members)
        return (row.key,)

    def tracked(self, item: int | ProfileItem) -> bool:
        if isinstance(item, ProfileItem):
            return False  # "no records from that time" is an answer too
        row = find_data_id(item, self.version)
        return row is not None and row.period == "current"

    def fallback(self, item: int | ProfileItem) -> Sequence[int]:
        """The single identifiers of a block's members (current values and settlement periods)."""
        if isinstance(item, ProfileItem):
            return ()
        row = find_data_id(item, self.version)
        if row is None or not row.members or row.period not in ("current", "settlement"):
            return ()
        index = _QUANTITY_DI[self.version]
        singles = [index[m.key] for m in row.members if m.key in index]
        if row.period == "settlement":  # the same period of each member
            singles = [self._period(di, row.index) for di in singles]
        return [di for di in dict.fromkeys(singles) if di != item]

    def continuation(self, outcome: Any) -> Callable[[], Dlt645Exchange] | None:
        if not (isinstance(outcome, ReadReply) and outcome.follow_up):
            return None
        nxt = Master(self.version, self.zone).follow_up(outcome)
        return lambda: request_exchange(nxt, self.version, self.zone)

    def join(self, item: int | ProfileItem, outcomes: Sequence[Any]) -> Any:
        """The value of a reply in several frames (12H follow-ups), decoded from the joined data."""
        if isinstance(item, ProfileItem):
            item = item.di
        parts = [o for o in outcomes if isinstance(o, ReadReply)]
        if len(parts) != len(outcomes) or not parts:
            return next((o for o in outcomes if not isinstance(o, ReadReply)), outcomes[-1])
        raw = b"".join(p.raw or b"" for p in parts)
        row = find_data_id(item, self.version)
        if row is None:
            return ReadReply(parts[0].address, item, {}, raw=raw, version=self.version)
        try:
            values = row_values(row, raw, self.zone)
        except Dlt645Error as exc:
            return Undecodable(f"{len(parts)} frames joined: {exc}", raw.hex(" "))
        return ReadReply(parts[0].address, item, values, raw=raw, version=self.version)

    def frozen_range(self, days: int) -> None:
        return None  # 0506xxnn: one freeze per identifier

    def frozen_items(self, n: int) -> tuple[int, Sequence[int]]:
        if not self.supports_frozen or not 1 <= n <= 62:
            raise ValueError(f"no daily freeze {n} on {self.meter.id}")
        if self.frozen_export:
            return FREEZE_TIME | n, (FROZEN_FORWARD | n, FROZEN_REVERSE | n)
        return FREEZE_TIME | n, (FROZEN_FORWARD | n,)

    # -- settlement periods and load records (``gateway.polling.history``) ---------------------

    def _period(self, current: int, n: int) -> int:
        """The identifier of the n-th previous settlement period of a current energy value."""
        return current | n if self.version is _V7 else current | n * SETTLEMENT_STEP_1997

    def settlement_items(self, n: int) -> Sequence[int]:
        if not 1 <= n <= SETTLEMENT_PERIODS[self.version]:
            return ()
        blocks = (0x0001FF00, 0x0002FF00) if self.version is _V7 else (0x901F, 0x902F)
        return [self._period(di, n) for di in blocks[: 2 if self.frozen_export else 1]]

    def profile_item(self, category: int, start: datetime, count: int) -> ProfileItem | None:
        if self.version is not _V7 or category not in CATEGORIES:
            return None  # DL/T 645-1997 defines no load profile identifiers
        request = profile_request(self.meter.address, category, count, start)
        return ProfileItem(request.di, request.params, count, category)

    def _profile_exchange(self, item: ProfileItem) -> Dlt645Exchange:
        master = Master(self.version, self.zone)
        frame = master.send(ReadData(self.meter.address, item.di, self.version, item.params))
        return Dlt645Exchange(frame, FRAME_OVERHEAD + 201, master)  # one frame at most


SETTLEMENT_PERIODS = {_V7: 12, _V9: 2}  # 2007: DI0 01–0C; 1997: 94xx, 98xx
SETTLEMENT_STEP_1997 = 0x0400  # 90xx current, 94xx last period, 98xx the one before


@dataclass(frozen=True, slots=True)
class ProfileItem:
    """A load profile read: identifier, request data (NN + start), and what it asks for."""

    di: int
    params: bytes
    count: int
    category: int


def profile_rows(values: Any) -> dict[str, Any]:
    """A load profile reply as ``load_profile.rows``: ``record.time`` + the record's values."""
    rows = []
    for value in dict(values).values():
        if isinstance(value, tuple):
            for record in value:
                if isinstance(record, ProfileRecord) and record.time is not None:
                    rows.append({"record.time": record.time, **record.values})
    return {"load_profile.rows": rows}
