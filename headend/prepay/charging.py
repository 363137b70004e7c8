"""The charge job's database side: readings → intervals → charges and ledger rows, per point.

``charge_point`` loads a metering point's energy readings (``energy.active.import.total`` and the
tariff registers t1–t4 read at the same instant) from ``since`` on, the meter replacements and the
active charges, and applies ``charges.reconcile``: reversals first (a ``reversal`` ledger row
crediting the old charge), then new charges (a ``charge`` ledger row debiting each).  Both ledger
rows are keyed by the charge id and the charge itself by ``(point, start, end)``, so running the
job again, or two instances at once, never charges an interval twice.

Two passes: ``fast`` starts at the point's last charged reading (new readings only); ``full``
starts ``lookback_days`` back, so readings back-filled late (补抄) split the charged intervals they
fall in.  Charges go to the account the point is linked to at the interval's start; intervals
before a link's start are not charged.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, func, select, update

from headend.db.dialect import insert_ignore
from headend.db.prepay_tables import prepay_accounts, prepay_charges
from headend.db.readings import multipliers
from headend.db.subsets import FROZEN_ROWS
from headend.db.tables import meter_replacements, meters, readings
from headend.prepay import store
from headend.prepay.charges import (
    Interval,
    PointPlan,
    Replacement,
    Sample,
    Usage,
    YearStart,
    chain_segments,
    price_interval,
    reconcile,
    segments,
    tier_year,
)
from headend.prepay.money import to_micro
from headend.prepay.tariffs import TariffBook, is_tiered, parse_split
from headend.vee import validate
from headend.vee.limits import VeeSettings
from protocols.quantities import ENERGY_TARIFFS, ENERGY_TOTAL

log = logging.getLogger(__name__)
DEFAULT_VEE = VeeSettings()
KIND_PREFERENCE = {"daily_frozen": 0, "interval": 1, "on_demand": 2}


@dataclass
class PointResult:
    """What one pass did to one point."""

    created: int = 0
    reversed: int = 0
    skipped: int = 0


def _dec(text: str) -> Decimal | None:
    try:
        return Decimal(text)
    except ArithmeticError:
        return None


def point_meters(conn: Connection, point: str) -> list[str]:
    """Every meter that has served ``point``."""
    rows = conn.execute(select(meters.c.id).where(meters.c.point == point).distinct())
    return sorted(rows.scalars())


def load_samples(
    conn: Connection, meter_ids: list[str], since: datetime, *, frozen_only: bool = False
) -> dict[str, list[Sample]]:
    """Energy samples per meter from ``since`` on (one per instant; t1–t4 when all were read)."""
    wanted = [ENERGY_TOTAL, *ENERGY_TARIFFS]
    query = select(
        readings.c.meter, readings.c.time, readings.c.quantity, readings.c.kind, readings.c.value
    ).where(
        readings.c.meter.in_(meter_ids),
        readings.c.quantity.in_(wanted),
        readings.c.time >= since,
    )
    if frozen_only:
        query = query.where(FROZEN_ROWS)  # its partial index (headend.db.subsets)
    rows = conn.execute(query).all()
    by: dict[tuple[str, datetime], dict[str, tuple[int, Decimal]]] = defaultdict(dict)
    for r in rows:
        value = _dec(r.value)
        if value is None:
            continue
        rank = KIND_PREFERENCE.get(r.kind, 9)
        have = by[(r.meter, r.time)].get(r.quantity)
        if have is None or rank < have[0]:
            by[(r.meter, r.time)][r.quantity] = (rank, value)
    out: dict[str, list[Sample]] = defaultdict(list)
    for (meter, t), values in sorted(by.items()):
        if ENERGY_TOTAL not in values:
            continue
        regs = None
        if all(q in values for q in ENERGY_TARIFFS):
            regs = {n: values[q][1] for n, q in enumerate(ENERGY_TARIFFS, start=1)}
        out[meter].append(Sample(t, values[ENERGY_TOTAL][1], regs))
    return out


def load_replacements(conn: Connection, point: str) -> list[Replacement]:
    """The point's meter replacements, with the final and start readings as samples."""
    rows = conn.execute(
        select(meter_replacements)
        .where(meter_replacements.c.point == point)
        .order_by(meter_replacements.c.at)
    ).all()
    out = []
    for r in rows:
        final, start = json.loads(r.old_final), json.loads(r.new_start)
        if ENERGY_TOTAL not in final or ENERGY_TOTAL not in start:
            log.warning("replacement at %s on %s lacks %s; not charged", r.at, point, ENERGY_TOTAL)
            continue

        def sample(values: dict[str, str], at: datetime = r.at) -> Sample:
            regs = None
            if all(q in values for q in ENERGY_TARIFFS):
                regs = {n: Decimal(values[q]) for n, q in enumerate(ENERGY_TARIFFS, start=1)}
            return Sample(at, Decimal(values[ENERGY_TOTAL]), regs)

        out.append(Replacement(r.old_meter, r.new_meter, r.at, sample(final), sample(start)))
    return out


def _plan_for(link: Any, conn: Connection, at: datetime) -> PointPlan:
    tariff = link.tariff
    if tariff is None:
        tariff = conn.execute(
            select(meters.c.tariff_category)
            .where(meters.c.point == link.point, meters.c.valid_from <= at)
            .order_by(meters.c.valid_from.desc())
        ).scalar()
    return PointPlan(tariff or "", parse_split(link.split))


def _usage_start(
    book: TariffBook,
    plans: list[PointPlan],
    since: datetime,
    zone: Any,
    year_start: YearStart = (1, 1),
) -> datetime:
    """Where the tier periods of ``since`` start (the tier year when a tariff tiers yearly)."""
    names = {
        t
        for p in plans
        for t in [p.tariff, *(s.tariff for s in (p.split.parts if p.split else ()))]
    }
    yearly = any(
        is_tiered(v.definition) and getattr(v.definition, "period", "") == "yearly"
        for t in names
        for v in book.versions(t)
    )
    start = since.astimezone(zone).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    if not yearly:
        return start
    month, day = year_start
    return start.replace(year=tier_year(start, year_start), month=month, day=day)


def charge_point(
    conn: Connection,
    point: str,
    links: list[Any],
    book: TariffBook,
    zone: Any,
    *,
    now: datetime,
    full: bool,
    lookback: timedelta,
    frozen_only: bool = False,
    vee: VeeSettings | None = None,
    year_start: YearStart = (1, 1),
) -> PointResult:
    """One pass over one point (see the module docstring); runs in the caller's transaction."""
    c = prepay_charges.c
    result = PointResult()
    last_end = conn.execute(
        select(func.max(c.end)).where(c.point == point, c.state == "active")
    ).scalar_one()
    since = now - lookback if full or last_end is None else last_end
    earliest = min(link.valid_from for link in links)
    since = max(since, earliest)
    horizon = conn.execute(
        select(func.max(c.end)).where(c.point == point, c.state == "active", c.start < since)
    ).scalar_one()
    meter_ids = point_meters(conn, point)
    samples = load_samples(conn, meter_ids, since, frozen_only=frozen_only)
    reps = [r for r in load_replacements(conn, point) if r.at >= since]
    versions = {m: multipliers(conn, m) for m in meter_ids}

    def mult(m: str, t: datetime) -> Decimal:
        return versions[m].at(t) if m in versions else Decimal(1)

    segmented = segments(samples, reps)
    if vee is not None:  # charging sees validated readings only (headend.vee)
        at_replacement = frozenset(r.at for r in reps)
        segmented = validate.screen_point(conn, point, segmented, vee, mult, now, at_replacement)
    built = chain_segments(segmented, mult)
    result.skipped = len(built.skipped)

    def link_at(t: datetime) -> Any:
        for link in links:
            if link.valid_from <= t and (link.valid_to is None or t < link.valid_to):
                return link
        return None

    desired = [
        i
        for i in built.intervals
        if (horizon is None or i.start >= horizon) and link_at(i.start) is not None
    ]
    existing = conn.execute(
        select(c.id, c.start, c.end, c.state, c.account, c.amount_micro).where(
            c.point == point, c.start >= since
        )
    ).all()
    active = {(r.start, r.end): r for r in existing if r.state == "active"}
    retired = [(r.start, r.end) for r in existing if r.state != "active"]
    plan = reconcile(desired, active, retired)
    if not plan.reverse and not plan.create:
        return result
    for key in plan.reverse:
        row = active[key]
        conn.execute(
            update(prepay_charges)
            .where(c.id == row.id, c.state == "active")
            .values(state="reversed", reversed_at=now)
        )
        store.post(
            conn,
            row.account,
            "reversal",
            row.amount_micro,  # credits back what the charge debited
            key[1],
            f"charge:{row.id}",
            actor="prepay",
            now=now,
            reason="a reading inside the interval arrived late",
        )
        result.reversed += 1
    plans = [_plan_for(link, conn, since) for link in links]
    usage_from = _usage_start(
        book, plans, min((i.start for i in plan.create), default=since), zone, year_start
    )
    usages: dict[str, Usage] = {}

    def usage_of(account: str) -> Usage:
        """The account's charged energy per tariff and tier period (tiers count per account,
        over all its points; a new occupant starts from zero)."""
        if account not in usages:
            rows = conn.execute(
                select(c.end, c.lines).where(
                    c.account == account, c.state == "active", c.end > usage_from
                )
            ).all()
            usages[account] = Usage(
                (r.end, ln["tariff"], ln["period"], Decimal(ln["energy"]))
                for r in rows
                for ln in r.lines
            )
        return usages[account]

    for interval in plan.create:
        link = link_at(interval.start)
        usage = usage_of(link.account)
        lines = price_interval(
            _plan_for(link, conn, interval.start), book, zone, interval, usage, year_start
        )
        usage.add(interval.end, lines)
        amount = to_micro(sum((ln.amount for ln in lines), Decimal(0)))
        charge_id = _insert_charge(conn, link.account, point, interval, lines, amount, now)
        if charge_id is None:
            continue
        store.post(
            conn,
            link.account,
            "charge",
            -amount,
            interval.end,
            f"charge:{charge_id}",
            actor="prepay",
            now=now,
        )
        result.created += 1
    return result


def _insert_charge(
    conn: Connection,
    account: str,
    point: str,
    interval: Interval,
    lines: list[Any],
    amount: int,
    now: datetime,
) -> int | None:
    row = conn.execute(
        insert_ignore(conn, prepay_charges)
        .values(
            account=account,
            point=point,
            meter=interval.meter,
            start=interval.start,
            end=interval.end,
            start_value=str(interval.start_value),
            end_value=str(interval.end_value),
            multiplier=str(interval.multiplier),
            energy=str(interval.piece.energy),
            amount_micro=amount,
            lines=[ln.as_json() for ln in lines],
            state="active",
            created_at=now,
        )
        .returning(prepay_charges.c.id)
    ).first()
    return None if row is None else int(row.id)


def charge_all(
    conn_factory: Any,
    zone: Any,
    *,
    now: datetime,
    full: bool,
    lookback: timedelta,
    vee: VeeSettings | None = DEFAULT_VEE,
    year_start: YearStart = (1, 1),
    after_point: Callable[[Connection, str, datetime], object] | None = None,
) -> PointResult:
    """Charge every linked point, one transaction per point (``conn_factory()`` opens one);
    ``after_point(conn, point, now)`` runs in the same transaction (the estimates' true-up, so a
    new actual charge and the estimate it replaces never show in the balance together)."""
    with conn_factory() as conn:
        links = store.point_links(conn)
        book = store.tariff_book(conn)
        postpaid = set(
            conn.execute(
                select(prepay_accounts.c.id).where(prepay_accounts.c.mode == "postpaid")
            ).scalars()
        )
    by_point: dict[str, list[Any]] = defaultdict(list)
    for link in links:
        by_point[link.point].append(link)
    total = PointResult()
    for point, point_links in sorted(by_point.items()):
        try:
            with conn_factory() as conn:
                r = charge_point(
                    conn,
                    point,
                    point_links,
                    book,
                    zone,
                    now=now,
                    full=full,
                    lookback=lookback,
                    # postpaid bills come from the daily frozen readings (日冻结) only
                    frozen_only=point_links[-1].account in postpaid,
                    vee=vee,
                    year_start=year_start,
                )
                if after_point is not None:
                    after_point(conn, point, now)
        except Exception as exc:  # one bad point must not stop the others
            log.error("charging point %s failed: %s", point, exc)
            continue
        total.created += r.created
        total.reversed += r.reversed
        total.skipped += r.skipped
    return total
