"""The event detector: a sweep's results + the remembered state → new events, exactly once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from gateway.events.sweep import (
    DEFAULT_DRIFT_LIMIT_S,
    FIRST_CONTACT_WINDOW,
    RECORDS_KEPT,
    SEEN_KEPT,
    SITE_VISIT_DRIFT_S,
    SW1_ACTIVE_REVERSED,
    SW3_RELAY_OPEN,
    Counter,
    MeterEventState,
    OpenRecord,
    PollResult,
    RecordLike,
    record_key,
)
from protocols.model import Event, EventType
from protocols.quantities import ENERGY_EXPORT_TOTAL, ENERGY_TOTAL


class EventDetector:
    """Turns a sweep's results and the remembered state into new events (see module docstring)."""

    def __init__(
        self,
        drift_limit_s: float = DEFAULT_DRIFT_LIMIT_S,
        site_visit_drift_s: float = SITE_VISIT_DRIFT_S,
        energy_quantities: tuple[str, ...] = (ENERGY_TOTAL, ENERGY_EXPORT_TOTAL),
        first_contact_window: timedelta = FIRST_CONTACT_WINDOW,
    ) -> None:
        if not 0 < drift_limit_s <= site_visit_drift_s:
            raise ValueError("need 0 < drift_limit_s <= site_visit_drift_s")
        if first_contact_window < timedelta(0):
            raise ValueError("first_contact_window must not be negative")
        self.first_contact_window = first_contact_window
        self.drift_limit_s = drift_limit_s
        self.site_visit_drift_s = site_visit_drift_s
        self.energy_quantities = energy_quantities

    def detect(
        self, meter: str, state: MeterEventState, poll: PollResult
    ) -> tuple[list[Event], MeterEventState]:
        """New events of ``meter`` and the state to persist (``state`` is not modified)."""
        new = MeterEventState.from_json(state.to_json())
        events: list[Event] = []
        replaced = poll.replaced or (
            poll.identity is not None and new.identity is not None and poll.identity != new.identity
        )
        if poll.identity is not None:
            new.identity = poll.identity
        if replaced:  # a new physical meter: its counters and registers start afresh
            new.counts.clear()
            new.seen.clear()
            new.open.clear()
            new.energy.clear()
            new.scan.clear()
        for counter in Counter:
            events += self._counter(meter, counter, new, poll)
        events += self._relay(meter, new, poll)
        events += self._drift(meter, new, poll)
        events += self._energy(meter, new, poll)
        return events, new

    # -- counters and records -------------------------------------------------------------
    def _counter(
        self, meter: str, counter: Counter, st: MeterEventState, poll: PollResult
    ) -> list[Event]:
        count = poll.counts.get(counter)
        if count is None:
            return []
        key = counter.value
        before = st.counts.get(key)
        st.counts[key] = count
        records = poll.records.get(counter, {})
        seen = st.seen.setdefault(key, [])
        pending = st.open.setdefault(key, [])
        out: list[Event] = []
        if before is not None and count < before:  # cleared at the meter: a new baseline
            pending.clear()
            st.scan.pop(key, None)
            return []
        if before is None:  # first contact: look back through the records it holds
            st.scan.pop(key, None)
            if count > 0:
                st.scan[key] = [count, count, int(poll.gateway_time.timestamp())]
        new_numbers = range(1, min(count - before, RECORDS_KEPT) + 1) if before is not None else ()
        missed = count - before - RECORDS_KEPT if before is not None else 0
        if before is not None and any(n not in records for n in new_numbers):
            st.counts[key] = before  # records not read (bus trouble): read them next sweep
        for n in new_numbers:
            rec = records.get(n)
            start = record_key(rec.start) if rec is not None else None
            if rec is None or start is None or start in seen:
                continue
            details: dict[str, Any] = {"count": count - n + 1}
            if missed > 0 and n == RECORDS_KEPT:
                details["missed"] = missed
            out.append(self._record_event(meter, counter, rec, poll, details))
            seen.append(start)
            if rec.end is None:
                pending.append(OpenRecord(start, count - n + 1))
        if key in st.scan:
            out += self._first_contact(meter, counter, st, poll, count)
        for open_rec in list(pending):
            n = count - open_rec.ordinal + 1
            rec = records.get(n)
            if n > RECORDS_KEPT:  # scrolled out of the meter's memory before it closed
                pending.remove(open_rec)
                continue
            if rec is None or record_key(rec.start) != open_rec.start or rec.end is None:
                continue
            details = {"count": open_rec.ordinal, "phase": "end"}
            out.append(self._record_event(meter, counter, rec, poll, details))
            pending.remove(open_rec)
        del seen[:-SEEN_KEPT]
        return out

    def _first_contact(
        self, meter: str, counter: Counter, st: MeterEventState, poll: PollResult, count: int
    ) -> list[Event]:
        """Look back through the records a counter held at first contact, newest first.

        The horizon is first contact minus ``first_contact_window`` (the back-fill window): an
        opening the meter recorded after it happened while nobody watched (before commissioning
        on this gateway, or between the simulator's start and the first sweep) and is reported
        once; the first closed record older than the horizon ends the look-back (older ones are
        older still).  A record still open is reported whatever its age.  Records are followed
        by their ordinal (the counter value they were recorded under), so openings during the
        look-back do not confuse it; a record not read this sweep is read on the next one.
        """
        key = counter.value
        top, nxt, first = st.scan[key]
        records = poll.records.get(counter, {})
        seen = st.seen.setdefault(key, [])
        pending = st.open.setdefault(key, [])
        horizon = datetime.fromtimestamp(first, UTC) - self.first_contact_window
        out: list[Event] = []
        done = False
        while nxt >= 1 and not done:
            n = count - nxt + 1
            rec = records.get(n)
            if n > RECORDS_KEPT or nxt <= top - RECORDS_KEPT:
                done = True  # scrolled out of the meter's memory
            elif rec is None:
                break  # not read this sweep
            elif rec.start is None or (rec.end is not None and rec.start.utc < horizon):
                done = True  # history from before the horizon: older ones are older still
            else:
                start = record_key(rec.start)
                if start is not None and start not in seen:
                    details: dict[str, Any] = {"count": nxt, "first_contact": True}
                    out.append(self._record_event(meter, counter, rec, poll, details))
                    seen.append(start)
                    if rec.end is None:
                        pending.append(OpenRecord(start, nxt))
                nxt -= 1
        if done or nxt < 1:
            del st.scan[key]
        else:
            st.scan[key] = [top, nxt, first]
        return out

    @staticmethod
    def _record_event(
        meter: str, counter: Counter, rec: RecordLike, poll: PollResult, details: dict[str, Any]
    ) -> Event:
        start = rec.start
        end = rec.end
        phase = "complete" if end is not None else "start"
        return Event(
            meter=meter,
            type=counter.event_type,
            start=start.aware if start else None,
            end=end.aware if end else None,
            detected=poll.gateway_time,
            details={"phase": phase, **details},  # an explicit phase ("end") wins
        )

    # -- relay, clock, energy ---------------------------------------------------------------
    def _relay(self, meter: str, st: MeterEventState, poll: PollResult) -> list[Event]:
        sw3 = poll.status_words.get(3)
        if sw3 is None:
            return []
        relay = "open" if sw3 & SW3_RELAY_OPEN else "closed"
        before, st.relay = st.relay, relay
        if before is None or before == relay:
            return []
        return [
            Event(
                meter=meter,
                type=EventType.RELAY_CHANGE,
                start=self._observed(poll),
                detected=poll.gateway_time,
                details={"from": before, "to": relay, "observed": True},
            )
        ]

    @staticmethod
    def _observed(poll: PollResult) -> datetime:
        """When a change was observed: the meter's clock if read, else the gateway's."""
        return poll.meter_time.aware if poll.meter_time is not None else poll.gateway_time

    def _drift(self, meter: str, st: MeterEventState, poll: PollResult) -> list[Event]:
        if poll.meter_time is None or not poll.gateway_clock_synced:
            return []
        drift = (poll.meter_time.utc - poll.gateway_time).total_seconds()
        size = abs(drift)
        level = (
            "site_visit"
            if size >= self.site_visit_drift_s
            else "sync"
            if size > self.drift_limit_s
            else "ok"
        )
        order = ("ok", "sync", "site_visit")
        before, st.drift_level = st.drift_level, level
        if order.index(level) <= order.index(before):
            return []
        limit = self.site_visit_drift_s if level == "site_visit" else self.drift_limit_s
        return [
            Event(
                meter=meter,
                type=EventType.CLOCK_DRIFT,
                start=poll.meter_time.aware,
                detected=poll.gateway_time,
                details={"drift_s": round(drift, 1), "limit_s": limit, "level": level},
            )
        ]

    def _energy(self, meter: str, st: MeterEventState, poll: PollResult) -> list[Event]:
        out: list[Event] = []
        export_grew = False
        for quantity in self.energy_quantities:
            value = poll.energy.get(quantity)
            if value is None:
                continue
            before = _decimal(st.energy.get(quantity))
            st.energy[quantity] = str(value)
            if before is None:
                continue
            if value < before:
                out.append(
                    Event(
                        meter=meter,
                        type=EventType.READING_ANOMALY,
                        start=self._observed(poll),
                        detected=poll.gateway_time,
                        details={
                            "anomaly": "energy_backwards",
                            "quantity": quantity,
                            "previous": str(before),
                            "value": str(value),
                        },
                    )
                )
            elif quantity == ENERGY_EXPORT_TOTAL and value > before:
                export_grew = True
        sw1 = poll.status_words.get(1)
        bit = sw1 is not None and bool(sw1 & SW1_ACTIVE_REVERSED)
        if sw1 is None and ENERGY_EXPORT_TOTAL not in poll.energy:
            return out  # nothing read that could say either way
        now_reversed = export_grew or bit
        before_reversed, st.reversed = st.reversed, now_reversed
        if now_reversed and not before_reversed:
            out.append(
                Event(
                    meter=meter,
                    type=EventType.READING_ANOMALY,
                    start=self._observed(poll),
                    detected=poll.gateway_time,
                    details={
                        "anomaly": "reverse_energy",
                        "export_grew": export_grew,
                        "status_bit": bit,
                    },
                )
            )
        return out


def _decimal(text: str | None) -> Decimal | None:
    if text is None:
        return None
    try:
        return Decimal(text)
    except InvalidOperation:
        return None
