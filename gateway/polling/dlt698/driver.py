"""The DL/T 698.45 driver (see ``gateway.polling.dlt698``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from gateway.config import MeterConfig
from gateway.events import Counter, PollResult
from gateway.polling.dlt698.exchange import Dlt698Exchange
from gateway.polling.dlt698.items import (
    ALL_METERS,
    EVENT_OI,
    EVENT_SWEEP,
    FRAME_OVERHEAD,
    INSTANT,
    QUANTITY_OAD,
    RESULT_ALLOWANCE,
    ROW_ALLOWANCE,
    EventRecord,
    Item,
    object_keys,
)
from gateway.polling.driver import (
    Group,
    MeterRefused,
    ReplyUndecodable,
    Undecodable,
    poll_result_of,
)
from protocols.dlt698 import apdu as A
from protocols.dlt698.axdr import Data
from protocols.dlt698.connection import Client
from protocols.dlt698.descriptors import OAD, DataType, Selector9, Selector10, dar_name
from protocols.dlt698.errors import Dlt698Error, Dlt698ValueError
from protocols.dlt698.objects import (
    DAILY_FROZEN,
    ENERGY_EXPORT,
    ENERGY_IMPORT,
    EVENT_COLUMNS,
    EVENT_COUNT_ATTRIBUTE,
    EVENT_COUNT_KEYS,
    EVENT_END,
    EVENT_RECORD_NO,
    EVENT_START,
    FREEZE_TIME,
)
from protocols.dlt698.values import decode_value
from protocols.model import MeterTime

_STATUS = 0x2014


def values_of(oad: OAD, data: Data) -> dict[str, Any]:
    """Canonical values of an attribute; NULL elements of an array are left out (a single-phase
    meter may answer phases B and C with NULL), the others decoded by their index."""
    if (
        data.type is DataType.ARRAY
        and not oad.index
        and oad.oi != _STATUS
        and any(e.type is DataType.NULL for e in data.value)
    ):
        out: dict[str, Any] = {}
        for i, element in enumerate(data.value, start=1):
            if element.type is not DataType.NULL:
                out.update(decode_value(OAD(oad.oi, oad.attribute, i), element))
        return out
    return decode_value(oad, data)


class Dlt698Driver:
    """Reads one DL/T 698.45 meter (public association for reads)."""

    supports_frozen = True

    def __init__(self, meter: MeterConfig, zone: str, *, frozen_export: bool = False) -> None:
        self.meter = meter
        self.zone = zone
        self.frozen_export = frozen_export
        self.association_required = False  # learnt from a DAR 15 / ERROR-Response to a read
        self._associated_until = 0.0  # monotonic
        self._piid = 0

    def next_piid(self) -> int:
        """The meter's PIID sequence (0-63): a late answer never passes for the next one's."""
        self._piid = (self._piid + 1) & 0x3F
        return self._piid

    def associated(self, timeout_s: int) -> None:
        """The meter accepted a CONNECT for ``timeout_s`` seconds."""
        self._associated_until = time.monotonic() + max(0, timeout_s - 5)

    # -- items -----------------------------------------------------------------------------------
    def plan(self, group: Group) -> Sequence[Item]:
        if group is Group.ENERGY:
            oads = (ENERGY_IMPORT, ENERGY_EXPORT) if self.meter.role == "area_total" else None
            return [Item(oads)] if oads else [Item((ENERGY_IMPORT,))]
        if group is Group.EXPORT:
            return [Item((ENERGY_EXPORT,))]
        if group is Group.INSTANT:
            return [Item(INSTANT)]
        return [Item(EVENT_SWEEP)]

    def items_for(self, quantities: Iterable[str]) -> Sequence[Item]:
        oads = dict.fromkeys(QUANTITY_OAD[q] for q in quantities if q in QUANTITY_OAD)
        return [Item((oad,)) for oad in oads]

    def record_items(self, plan: dict[Counter, list[int]]) -> list[Item]:
        """The event records of a ``records_to_read`` plan: the last k of each object."""
        return [
            Item((OAD(EVENT_OI[c], 2),), Selector10(max(ns), ALL_METERS), EVENT_COLUMNS)
            for c, ns in plan.items()
            if ns
        ]

    @property
    def _frozen_columns(self) -> tuple[OAD, ...]:
        return (FREEZE_TIME, ENERGY_IMPORT) + ((ENERGY_EXPORT,) if self.frozen_export else ())

    def frozen_items(self, n: int) -> tuple[Item, Sequence[Item]]:
        """The n-th last daily freeze: one GET-Record row carries time and values."""
        if not 1 <= n <= 62:
            raise ValueError(f"no daily freeze {n} on {self.meter.id}")
        return Item((DAILY_FROZEN,), Selector9(n), self._frozen_columns), ()

    def frozen_range(self, days: int) -> Item | None:
        """The last ``days`` freezes in one GET-Record (Selector10; GET-Next blocks if long)."""
        if not 1 <= days <= 62:
            return None
        return Item((DAILY_FROZEN,), Selector10(days, ALL_METERS), self._frozen_columns)

    # -- exchanges -------------------------------------------------------------------------------
    def _request(self, item: Item) -> Callable[[Client], bytes]:
        address = self.meter.address

        def build(client: Client) -> bytes:
            piid = self.next_piid()
            if item.rsd is not None:
                request: A.Request = A.GetRequestRecord(piid, item.oads[0], item.rsd, item.columns)
            elif len(item.oads) == 1:
                request = A.GetRequestNormal(piid, item.oads[0])
            else:
                request = A.GetRequestNormalList(piid, item.oads)
            return client.send(address, request)

        return build

    def _reply_len(self, item: Item) -> int:
        if item.rsd is None:
            return FRAME_OVERHEAD + RESULT_ALLOWANCE * len(item.oads)
        rows = item.rsd.last if isinstance(item.rsd, Selector10) else 1
        return FRAME_OVERHEAD + RESULT_ALLOWANCE + ROW_ALLOWANCE * rows

    def _exchange(self, build: Callable[[Client], bytes], reply_len: int) -> Dlt698Exchange:
        client = Client()
        if self.association_required and time.monotonic() >= self._associated_until:
            return Dlt698Exchange.associating(self, build, reply_len)
        return Dlt698Exchange(build(client), reply_len, client, build, self)

    def exchange(self, item: Item) -> Dlt698Exchange:
        return self._exchange(self._request(item), self._reply_len(item))

    def command_exchange(
        self, request: Callable[[int], A.Request], password: str | None = None
    ) -> Dlt698Exchange:
        """An exchange for a request built from a PIID (commands: SET, ACTION, read-backs);
        with ``password``, a password association (CONNECT) goes first in the same exchange."""
        address = self.meter.address

        def build(client: Client) -> bytes:
            return client.send(address, request(self.next_piid()))

        if password is None:
            return self._exchange(build, FRAME_OVERHEAD + 2 * RESULT_ALLOWANCE)
        return Dlt698Exchange.associating(self, build, FRAME_OVERHEAD + 80, password)

    # -- replies ---------------------------------------------------------------------------------
    def _refused(self, item: Item, why: str) -> MeterRefused:
        return MeterRefused(f"{self.meter.id}: {item.key} refused ({why})")

    def decode(self, item: Item, outcome: Any) -> dict[str, Any]:
        if isinstance(outcome, Undecodable):
            raise ReplyUndecodable(f"{outcome.reason}; reply {outcome.raw}")
        if isinstance(outcome, A.ErrorResponse):
            raise self._refused(item, f"ERROR-Response {outcome.error}")
        if isinstance(outcome, A.ConnectResponse):
            raise self._refused(item, f"association refused, result {outcome.result}")
        try:
            if isinstance(outcome, A.GetResponseNormal):
                return self._results(item, (outcome.result,))
            if isinstance(outcome, A.GetResponseNormalList):
                return self._results(item, outcome.results)
            if isinstance(outcome, A.GetResponseRecord):
                return self._record(item, outcome.result)
        except (Dlt698Error, TypeError, AttributeError, IndexError) as exc:
            raise ReplyUndecodable(f"{self.meter.id}: {item.key}: {exc}") from exc
        if isinstance(outcome, A.GetResponseNext) and outcome.last and not outcome.dar:
            return self.decode(item, self.join(item, [outcome]))  # the only block
        if isinstance(outcome, A.GetResponseNext):  # a failed block
            raise self._refused(item, f"GET-Next block {outcome.block}: {dar_name(outcome.dar)}")
        raise self._refused(item, f"unexpected reply {type(outcome).__name__}")

    def _results(self, item: Item, results: Sequence[A.ResultNormal]) -> dict[str, Any]:
        refusals = [f"{r.oad.hex} {dar_name(r.dar)}" for r in results if r.data is None]
        if refusals:
            raise self._refused(item, ", ".join(refusals))
        out: dict[str, Any] = {}
        for r in results:
            assert r.data is not None
            if r.oad.attribute == EVENT_COUNT_ATTRIBUTE and r.oad.oi in EVENT_COUNT_KEYS:
                if not isinstance(r.data.value, int) or isinstance(r.data.value, bool):
                    raise Dlt698ValueError(f"{r.oad.hex}: a record count is not an integer")
                out[EVENT_COUNT_KEYS[r.oad.oi]] = r.data.value
            else:
                out.update(values_of(r.oad, r.data))
        return out

    def _record(self, item: Item, result: A.ResultRecord) -> dict[str, Any]:
        if result.rows is None:
            raise self._refused(item, dar_name(result.dar))
        if result.oad == DAILY_FROZEN:
            rows = [self._frozen_row(result.columns, row) for row in result.rows]
            if isinstance(item.rsd, Selector10):  # a range: every row, newest first

                def newest(row: dict[str, Any]) -> datetime:
                    stamp = row.get("freeze.time")
                    return stamp.local if isinstance(stamp, MeterTime) else datetime.min

                return {"frozen.rows": sorted(rows, key=newest, reverse=True)}
            return rows[0] if rows else {}
        return {"event.records": self._event_records(result)}

    def _frozen_row(self, columns: Sequence[Any], row: Sequence[Any]) -> dict[str, Any]:
        """The values of one row; ``freeze.time`` as the meter's time."""
        out: dict[str, Any] = {}
        for column, data in zip(columns, row, strict=True):
            if isinstance(column, OAD):
                out.update(values_of(column, data))
        stamp = out.pop("freeze.time", None)
        if isinstance(stamp, datetime):
            out["freeze.time"] = MeterTime(stamp, self.zone)
        return out

    def _event_records(self, result: A.ResultRecord) -> list[EventRecord]:
        at = {c: i for i, c in enumerate(result.columns)}
        out = []
        for row in result.rows or ():

            def cell(oad: OAD, row: tuple[Any, ...] = row) -> Any:
                return row[at[oad]].value if oad in at else None

            number = cell(EVENT_RECORD_NO)
            out.append(
                EventRecord(
                    number if isinstance(number, int) else None,
                    self._stamp(cell(EVENT_START)),
                    self._stamp(cell(EVENT_END)),
                )
            )
        return out

    def _stamp(self, value: Any) -> MeterTime | None:
        local = value.to_datetime() if hasattr(value, "to_datetime") else None
        return MeterTime(local, self.zone) if isinstance(local, datetime) else None

    def poll_result(
        self, values: dict[str, Any], gateway_time: datetime, clock_synced: bool
    ) -> PollResult | None:
        counts = {
            c: values[EVENT_COUNT_KEYS[oi]]
            for c, oi in EVENT_OI.items()
            if isinstance(values.get(EVENT_COUNT_KEYS[oi]), int)
        }
        clock = values.get("meter.clock")
        meter_time = MeterTime(clock, self.zone) if isinstance(clock, datetime) else None
        return poll_result_of(
            values,
            gateway_time,
            clock_synced,
            counts=counts,
            meter_time=meter_time,
            identity=self.meter.address,
        )

    def records(
        self, plan: dict[Counter, list[int]], by_item: dict[Any, dict[str, Any]]
    ) -> dict[Counter, dict[int, Any]]:
        """Rows of the last-k reads, most recent first: row i is record i + 1."""
        out: dict[Counter, dict[int, Any]] = {}
        for item in self.record_items(plan):
            counter = next(c for c, oi in EVENT_OI.items() if oi == item.oads[0].oi)
            rows = (by_item.get(item) or {}).get("event.records") or []
            wanted = set(plan[counter])
            for n, record in enumerate(rows, start=1):
                if n in wanted:
                    out.setdefault(counter, {})[n] = record
        return out

    # -- capabilities ----------------------------------------------------------------------------
    def settlement_items(self, n: int) -> Sequence[Item]:
        return ()  # settlement (monthly frozen, 5006) not read yet on DL/T 698.45 meters

    def profile_item(self, category: int, start: datetime, count: int) -> None:
        return None  # nor load curves (minute frozen, 5002)

    def key(self, item: Item) -> str:
        return item.key

    def quantities(self, item: Item) -> tuple[str, ...]:
        if item.record:
            return ()
        return tuple(k for oad in item.oads for k in object_keys(oad))

    def tracked(self, item: Item) -> bool:
        """Current values tell what the meter lacks; a refused record or freeze does not."""
        return not item.record

    def fallback(self, item: Item) -> Sequence[Item]:
        """A NormalList falls back to its single attributes."""
        if item.record or len(item.oads) < 2:
            return ()
        return [Item((oad,)) for oad in item.oads]

    def continuation(self, outcome: Any) -> Callable[[], Dlt698Exchange] | None:
        if not isinstance(outcome, A.GetResponseNext) or outcome.last or outcome.dar:
            return None
        address, block = self.meter.address, outcome.block
        return lambda: self._exchange(
            lambda c: c.send(address, A.GetRequestNext(self.next_piid(), block)),
            FRAME_OVERHEAD + RESULT_ALLOWANCE + ROW_ALLOWANCE * 8,
        )

    def join(self, item: Item, outcomes: Sequence[Any]) -> Any:
        """GET-Next blocks of records joined into one GET-Record answer."""
        blocks = [o for o in outcomes if isinstance(o, A.GetResponseNext)]
        if len(blocks) != len(outcomes):
            return next(o for o in outcomes if not isinstance(o, A.GetResponseNext))
        failed = next((b for b in blocks if b.dar or not b.results), None)
        if failed is not None:
            return failed
        parts = [r for b in blocks for r in b.results]
        if not all(isinstance(p, A.ResultRecord) for p in parts):
            return Undecodable(f"{len(blocks)} GET-Next blocks of mixed kinds")
        first = parts[0]
        assert isinstance(first, A.ResultRecord)
        rows = tuple(row for p in parts if isinstance(p, A.ResultRecord) for row in p.rows or ())
        return A.GetResponseRecord(blocks[0].piid, A.ResultRecord(first.oad, first.columns, rows))
