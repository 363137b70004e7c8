"""Validation of one metering point's readings inside the charge job's transaction.

``screen_point`` takes the point's samples already cut into per-meter segments (the charge job's
``charges.segments``), applies the operators' resolutions and the rules (``headend.vee.rules``)
with each meter's limits, records every failure with its rule (``headend.vee.store``) and returns
only the kept samples: charging never sees a held reading.  The first sample of a segment is the
reference; a first sample that an open failure holds is dropped so the next one becomes the
reference (a full pass's window may start on a held reading).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal

from sqlalchemy import Connection, select

from headend.db.prepay_tables import prepay_charges
from headend.db.tables import meters
from headend.vee import store
from headend.vee.limits import VeeSettings, limits
from headend.vee.rules import Sample, screen


def _models(conn: Connection, meter_ids: Sequence[str]) -> dict[str, str | None]:
    rows = conn.execute(
        select(meters.c.id, meters.c.model)
        .where(meters.c.id.in_(list(meter_ids)))
        .order_by(meters.c.valid_from)
    )
    return {r.id: r.model for r in rows}  # the newest version wins


def _history(conn: Connection, point: str, meter: str, before: datetime, n: int) -> list[Decimal]:
    """The meter's register rates (kWh/h before the multiplier) over its last ``n`` charges."""
    c = prepay_charges.c
    rows = conn.execute(
        select(c.start, c.end, c.start_value, c.end_value)
        .where(c.point == point, c.meter == meter, c.state == "active", c.end <= before)
        .order_by(c.end.desc())
        .limit(n)
    ).all()
    rates = []
    for r in reversed(rows):
        hours = Decimal(int((r.end - r.start).total_seconds())) / 3600
        if hours > 0:
            rates.append((Decimal(r.end_value) - Decimal(r.start_value)) / hours)
    return rates


def screen_point(
    conn: Connection,
    point: str,
    segmented: Sequence[tuple[str, list[Sample]]],
    settings: VeeSettings,
    multiplier: Callable[[str, datetime], Decimal],
    now: datetime,
    replacement_times: frozenset[datetime] = frozenset(),
) -> list[tuple[str, list[Sample]]]:
    """The point's segments with only validated samples (failures recorded)."""
    meter_ids = sorted({m for m, _ in segmented})
    firsts = [s[0].time for _, s in segmented if s]
    if not firsts:
        return [(m, list(s)) for m, s in segmented]
    since = min(firsts)
    decided = store.resolutions(conn, meter_ids, since)
    held = store.open_times(conn, meter_ids, since)
    models = _models(conn, meter_ids)
    kva, max_kw = store.contract(conn, point)
    out: list[tuple[str, list[Sample]]] = []
    for meter, samples in segmented:
        rest = list(samples)
        while rest and (meter, rest[0].time) in held and rest[0].time not in decided[meter]:
            rest.pop(0)
        if not rest:
            out.append((meter, []))
            continue
        mult = multiplier(meter, rest[-1].time)
        lim = limits(models.get(meter), mult, settings, contract_kva=kva, max_kw=max_kw)
        result = screen(
            meter,
            rest,
            lim,
            resolutions=decided[meter],
            history=_history(conn, point, meter, rest[0].time, lim.spike_history),
            replacement_times=replacement_times,
        )
        store.record(conn, point, meter, result.failures, (rest[0].time, rest[-1].time), now)
        out.append((meter, result.kept))
    return out
