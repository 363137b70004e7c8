"""Collection success per meter and quantity: a quantity counts as collected only when it was.

A visit that read a meter's energy but not its voltage is not a collected voltage.  For a window
``[t0, t1)`` and the meters of an area in force then, each (meter, quantity) is::

    collected    a reading of it arrived with a time in the window (a scheduled or on-demand
                 read, or a daily freeze: load records and settlement values have their own
                 books in the gateway's health, and bring quantities not asked of every meter)
    unavailable  the gateway reported that the meter does not give it (``quantity_unavailable``,
                 not followed by ``quantity_available`` before ``t1``): reason ``refused``,
                 ``unsupported`` or ``undecodable``
    missing      neither: asked of the meter (see *due*), not delivered, no reason given

A quantity is *due* for a meter when it is collected or unavailable for that meter, or collected
in the window from another meter of the area with the same protocol and model (the gateway's
schedule asks it of every such meter).  The success rate of a quantity is collected / due over
the meters; of a meter, collected / due over its quantities.  ``quantity_collection`` is the
pure core; ``collection_facts`` reads its inputs (SQLite and PostgreSQL alike).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from sqlalchemy import Connection, func, or_, select

from headend.analytics.repo import chunks
from headend.db.tables import events, meters, readings
from protocols.model import EventType

PLACES = Decimal("0.0001")
KINDS = ("interval", "on_demand", "daily_frozen")
LOAD_PROFILE_FLAG = "load_profile"  # headend.ingest.rows: load records stored as interval
COLLECTED, UNAVAILABLE, MISSING = "collected", "unavailable", "missing"


@dataclass(frozen=True)
class QuantityFacts:
    """What the head-end holds about an area's meters over a window."""

    peers: Mapping[str, str]  # meter → its peer group ("protocol/model")
    collected: Mapping[str, frozenset[str]]  # meter → quantities with a reading in the window
    unavailable: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # → quantity → why


@dataclass(frozen=True)
class MeterQuantity:
    """One meter's state for one quantity."""

    meter: str
    quantity: str
    state: str  # collected | unavailable | missing
    reason: str = ""


@dataclass(frozen=True)
class QuantityRate:
    """One quantity over the area's meters."""

    quantity: str
    due: int
    collected: int
    unavailable: int
    missing: int

    @property
    def success_rate(self) -> Decimal | None:
        return (Decimal(self.collected) / self.due).quantize(PLACES) if self.due else None


def quantity_collection(facts: QuantityFacts) -> tuple[list[MeterQuantity], list[QuantityRate]]:
    """Every due (meter, quantity) with its state, and the rate of each quantity."""
    offered: dict[str, set[str]] = defaultdict(set)  # peer group → quantities collected by any
    for meter, got in facts.collected.items():
        offered[facts.peers.get(meter, "")] |= got
    states: list[MeterQuantity] = []
    for meter in sorted(facts.peers):
        got = facts.collected.get(meter, frozenset())
        lost = facts.unavailable.get(meter, {})
        for quantity in sorted(offered[facts.peers[meter]] | got | set(lost)):
            if quantity in got:
                states.append(MeterQuantity(meter, quantity, COLLECTED))
            elif quantity in lost:
                states.append(MeterQuantity(meter, quantity, UNAVAILABLE, lost[quantity]))
            else:
                states.append(MeterQuantity(meter, quantity, MISSING))
    counts: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(_STATES, 0))
    for s in states:
        counts[s.quantity][s.state] += 1
    rates = [
        QuantityRate(q, sum(c.values()), c[COLLECTED], c[UNAVAILABLE], c[MISSING])
        for q, c in sorted(counts.items())
    ]
    return states, rates


_STATES = (COLLECTED, UNAVAILABLE, MISSING)


def open_unavailable(
    history: Iterable[tuple[str, str, Mapping[str, object]]],
) -> dict[str, dict[str, str]]:
    """Quantities still unavailable per meter after ``history`` (meter, event type, details) in
    the order the gateway detected them: an identifier's ``quantity_available`` ends it."""
    open_items: dict[tuple[str, str], tuple[str, tuple[str, ...]]] = {}
    for meter, kind, details in history:
        identifier = str(details.get("identifier", ""))
        if kind == EventType.QUANTITY_UNAVAILABLE.value:
            lost = details.get("quantities") or ()
            names = tuple(str(q) for q in lost) if isinstance(lost, list | tuple) else ()
            open_items[(meter, identifier)] = (str(details.get("reason", "")), names)
        elif kind == EventType.QUANTITY_AVAILABLE.value:
            open_items.pop((meter, identifier), None)
    out: dict[str, dict[str, str]] = defaultdict(dict)
    for (meter, _), (reason, names) in sorted(open_items.items()):
        for name in names:
            out[meter].setdefault(name, reason)
    return dict(out)


def collection_facts(conn: Connection, area: str, t0: datetime, t1: datetime) -> QuantityFacts:
    """The meters of ``area`` in force in ``[t0, t1)``, their readings and open unavailabilities."""
    rows = conn.execute(
        select(meters.c.id, meters.c.protocol, meters.c.model).where(
            meters.c.area == area,
            meters.c.valid_from < t1,
            or_(meters.c.valid_to.is_(None), meters.c.valid_to > t0),
        )
    )
    peers = {r.id: f"{r.protocol}/{r.model or ''}" for r in rows}
    collected: dict[str, set[str]] = defaultdict(set)
    history: list[tuple[str, str, dict[str, object]]] = []
    for chunk in chunks(sorted(peers)):
        got = conn.execute(
            select(readings.c.meter, readings.c.quantity)
            .where(
                readings.c.meter.in_(chunk),
                readings.c.time >= t0,
                readings.c.time < t1,
                readings.c.kind.in_(KINDS),
                readings.c.flags.not_like(f"%{LOAD_PROFILE_FLAG}%"),
            )
            .distinct()
        )
        for meter, quantity in got:
            collected[meter].add(quantity)
        said = conn.execute(
            select(events.c.meter, events.c.type, events.c.details)
            .where(
                events.c.meter.in_(chunk),
                events.c.type.in_(
                    (EventType.QUANTITY_UNAVAILABLE.value, EventType.QUANTITY_AVAILABLE.value)
                ),
                func.coalesce(events.c.detected, events.c.time) < t1,
            )
            .order_by(func.coalesce(events.c.detected, events.c.time), events.c.id)
        )
        for meter, kind, details in said:
            try:
                parsed = json.loads(details)
            except ValueError:
                continue
            history.append((meter, kind, parsed if isinstance(parsed, dict) else {}))
    return QuantityFacts(
        peers,
        {m: frozenset(q) for m, q in collected.items()},
        open_unavailable(history),
    )


__all__ = [
    "COLLECTED",
    "MISSING",
    "UNAVAILABLE",
    "MeterQuantity",
    "QuantityFacts",
    "QuantityRate",
    "collection_facts",
    "open_unavailable",
    "quantity_collection",
]
