"""Estimated charges of an open gap and their true-up: the database side of ``vee.estimate``.

Per metering point, after its actual charges (``charging.charge_point``)::

    reach   = the end of the point's last actual charge (its last validated reading)
    true-up   once ``reach`` passes an active estimate's start, all the point's active estimates
              are replaced: ``trued_up``, and when
              it was charged, an ``estimate_trueup`` ledger row credits exactly what its
              ``estimate`` row debited; the actual charge over the same time is already posted
    estimate  when ``now − reach ≥ estimate_after_hours``: estimated readings at the local midnights
              after ``reach`` (``headend.vee.estimate``), each interval priced like a charge and
              stored in ``vee_estimates``; an ``estimate`` ledger row debits it when the policy
              (``estimate_charging``) charges the account's mode

Estimates never enter ``prepay_charges``: actual charges, tier usage and tier true-ups are exactly
what they would be had the actual reading come in time, so after the true-up the balance is the
same.  The ledger shows the three steps: ``estimate`` −E, ``estimate_trueup`` +E, ``charge`` −A.

Policy (``[vee] estimate_charging``): ``postpaid`` (the default) bills estimates to postpaid
accounts and only records them for prepaid ones; ``all`` also debits prepaid balances; ``none``
records only.  Either way no account is disconnected on estimated consumption alone: the money
condition of a disconnect (``reminders.owes``) and the final notice leave out active estimates
(``outstanding_micro``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, func, select, update

from headend.db.dialect import insert_ignore
from headend.db.prepay_tables import prepay_accounts, prepay_charges, prepay_ledger
from headend.prepay import store
from headend.prepay.charges import Interval, Usage, YearStart, price_interval
from headend.prepay.charging import _plan_for, _usage_start, load_replacements
from headend.prepay.money import amount_row, from_micro, to_micro
from headend.prepay.pricing import Piece
from headend.prepay.tariffs import TariffBook
from headend.vee import estimate
from headend.vee.limits import VeeSettings
from headend.vee.tables import vee_estimates

log = logging.getLogger(__name__)
TRUE_UP_KIND = "estimate_trueup"


@dataclass
class EstimateResult:
    """What one pass did: estimates created and trued up."""

    created: int = 0
    trued_up: int = 0


def charges_estimates(settings: VeeSettings, mode: str) -> bool:
    """Whether the policy debits estimates to an account of ``mode``."""
    return settings.estimate_charging == "all" or (
        settings.estimate_charging == "postpaid" and mode == "postpaid"
    )


def true_up(conn: Connection, point: str, reach: datetime, now: datetime) -> int:
    """Replace the point's active estimates once an actual reading (``reach``) came after the
    start of one of them."""
    e = vee_estimates.c
    rows = conn.execute(select(vee_estimates).where(e.point == point, e.state == "active")).all()
    if not any(r.start < reach for r in rows):
        return 0
    # All of them: the later ones chain from estimated values the actual reading replaces (they
    # are estimated again from the actual reading when the gap is still long enough).
    for r in rows:
        done = conn.execute(
            update(vee_estimates)
            .where(e.id == r.id, e.state == "active")
            .values(state="trued_up", trued_up_at=now, actual_until=reach)
        )
        if not done.rowcount or not r.charged:
            continue
        store.post(
            conn,
            r.account,
            TRUE_UP_KIND,
            r.amount_micro,  # credits back exactly what the estimate debited
            r.end,
            f"estimate:{r.id}",
            actor="prepay",
            now=now,
            reason=(
                f"actual reading at {reach.isoformat()} replaces the estimate of "
                f"{r.energy} kWh ({from_micro(r.amount_micro)})"
            ),
            period=(r.start, r.end),
        )
    return len(rows)


def true_up_point(conn: Connection, point: str, now: datetime) -> int:
    """``true_up`` at the point's current reach (the charge job calls it after each point)."""
    c = prepay_charges.c
    reach = conn.execute(
        select(func.max(c.end)).where(c.point == point, c.state == "active")
    ).scalar_one()
    return 0 if reach is None else true_up(conn, point, reach, now)


def _history(
    conn: Connection, point: str, reach: datetime, days: int
) -> list[tuple[datetime, datetime, Decimal]]:
    c = prepay_charges.c
    rows = conn.execute(
        select(c.start, c.end, c.start_value, c.end_value).where(
            c.point == point,
            c.state == "active",
            c.end <= reach,
            c.end > reach - timedelta(days=days),
        )
    ).all()
    return [
        (r.start, r.end, Decimal(r.end_value) - Decimal(r.start_value))
        for r in rows
        if r.end > r.start
    ]


def _usage(conn: Connection, account: str, since: datetime) -> Usage:
    """The account's tier usage: its actual charges and its active estimates (an estimate is
    priced at the step that metered and estimated energy together have reached)."""
    c, e = prepay_charges.c, vee_estimates.c
    rows = [
        *conn.execute(
            select(c.end, c.lines).where(c.account == account, c.state == "active", c.end > since)
        ),
        *conn.execute(
            select(e.end, e.lines).where(e.account == account, e.state == "active", e.end > since)
        ),
    ]
    return Usage(
        (r.end, ln["tariff"], ln["period"], Decimal(ln["energy"])) for r in rows for ln in r.lines
    )


def estimate_point(
    conn: Connection,
    point: str,
    links: Sequence[Any],
    book: TariffBook,
    zone: Any,
    *,
    now: datetime,
    settings: VeeSettings,
    modes: dict[str, str],
    year_start: YearStart = (1, 1),
) -> EstimateResult:
    """True up and extend the point's estimates (see the module docstring); caller's transaction."""
    result = EstimateResult()
    c, e = prepay_charges.c, vee_estimates.c
    last = conn.execute(
        select(c.meter, c.end, c.end_value, c.multiplier)
        .where(c.point == point, c.state == "active")
        .order_by(c.end.desc())
        .limit(1)
    ).first()
    if last is None:
        return result  # nothing validated yet: no origin to estimate from
    reach = last.end
    result.trued_up = true_up(conn, point, reach, now)
    if now - reach < timedelta(hours=settings.estimate_after_hours):
        return result
    if any(r.at > reach for r in load_replacements(conn, point)):
        return result  # a meter change after the last reading: the new meter's readings decide
    link = next(
        (
            lk
            for lk in links
            if lk.valid_from <= reach and (lk.valid_to is None or reach < lk.valid_to)
        ),
        None,
    )
    if link is None:
        return result
    rate = estimate.mean_rate(
        _history(conn, point, reach, settings.estimate_history_days),
        Decimal(str(settings.estimate_min_history_hours)),
    )
    if rate is None:
        return result
    until = min(now, reach + timedelta(days=settings.estimate_max_days))
    if link.valid_to is not None:
        until = min(until, link.valid_to)
    closed = conn.execute(
        select(prepay_accounts.c.closed_at).where(prepay_accounts.c.id == link.account)
    ).scalar()
    if closed is not None:
        until = min(until, closed)  # a closed account (销户) is not estimated past its closing
    chain_from = conn.execute(
        select(e.end, e.end_value)
        .where(e.point == point, e.state == "active", e.origin == reach)
        .order_by(e.end.desc())
        .limit(1)
    ).first()
    start = (chain_from.end, Decimal(chain_from.end_value)) if chain_from else None
    ends = estimate.midnights(start[0] if start else reach, until, zone)
    if link.valid_to is not None and link.valid_to <= until and link.valid_to not in ends:
        ends.append(link.valid_to)
    filled = estimate.fill(
        (reach, Decimal(last.end_value)), start or (reach, Decimal(last.end_value)), rate, ends
    )
    if not filled:
        return result
    mult = Decimal(last.multiplier)
    plan = _plan_for(link, conn, reach)
    usage = _usage(
        conn, link.account, _usage_start(book, [plan], filled[0].start, zone, year_start)
    )
    charged = charges_estimates(settings, modes.get(link.account, "prepaid"))
    for est in filled:
        interval = Interval(
            last.meter,
            est.start,
            est.end,
            est.start_value,
            est.end_value,
            mult,
            Piece(est.start, est.end, est.delta * mult, None),
        )
        lines = price_interval(plan, book, zone, interval, usage, year_start)
        usage.add(est.end, lines)
        amount = to_micro(sum((ln.amount for ln in lines), Decimal(0)))
        row = conn.execute(
            insert_ignore(conn, vee_estimates)
            .values(
                account=link.account,
                point=point,
                origin=reach,
                meter=last.meter,
                start=est.start,
                end=est.end,
                start_value=str(est.start_value),
                end_value=str(est.end_value),
                multiplier=str(mult),
                energy=str(est.delta * mult),
                rate=str(rate.quantize(Decimal("0.000001"))),
                method=estimate.METHOD,
                amount_micro=amount,
                lines=[ln.as_json() for ln in lines],
                charged=charged,
                state="active",
                created_at=now,
            )
            .returning(vee_estimates.c.id)
        ).first()
        if row is None:
            continue  # another instance estimated it
        if charged:
            store.post(
                conn,
                link.account,
                "estimate",
                -amount,
                est.end,
                f"estimate:{row.id}",
                actor="prepay",
                now=now,
                reason=f"estimated {est.delta * mult} kWh (no reading since {reach.isoformat()})",
                period=(est.start, est.end),
            )
        result.created += 1
    return result


def estimate_all(
    conn_factory: Any,
    zone: Any,
    *,
    now: datetime,
    settings: VeeSettings,
    year_start: YearStart = (1, 1),
) -> EstimateResult:
    """Estimates and true-ups of every linked point, one transaction per point."""
    with conn_factory() as conn:
        links = store.point_links(conn)
        book = store.tariff_book(conn)
        modes = {
            r.id: r.mode for r in conn.execute(select(prepay_accounts.c.id, prepay_accounts.c.mode))
        }
    by_point: dict[str, list[Any]] = {}
    for link in links:
        by_point.setdefault(link.point, []).append(link)
    total = EstimateResult()
    for point, point_links in sorted(by_point.items()):
        try:
            with conn_factory() as conn:
                r = estimate_point(
                    conn,
                    point,
                    point_links,
                    book,
                    zone,
                    now=now,
                    settings=settings,
                    modes=modes,
                    year_start=year_start,
                )
        except Exception as exc:  # one bad point must not stop the others
            log.error("estimating point %s failed: %s", point, exc)
            continue
        total.created += r.created
        total.trued_up += r.trued_up
    return total


def outstanding_micro(conn: Connection, account: str, *, billed_only: bool = False) -> int:
    """What the account's active charged estimates debit now (≥ 0, micro-units); ``billed_only``:
    only those a bill carries."""
    lg, e = prepay_ledger.c, vee_estimates.c
    refs = [
        f"estimate:{i}"
        for i in conn.execute(
            select(e.id).where(e.account == account, e.state == "active", e.charged.is_(True))
        ).scalars()
    ]
    total = 0
    for chunk in range(0, len(refs), 500):
        query = select(func.coalesce(func.sum(lg.amount_micro), 0)).where(
            lg.account == account,
            lg.kind == "estimate",
            lg.reference.in_(refs[chunk : chunk + 500]),
        )
        if billed_only:
            query = query.where(lg.bill.is_not(None))
        total += int(conn.execute(query).scalar_one())
    return -total


def listing(
    conn: Connection, account: str, *, state: str | None = None, limit: int = 200
) -> list[dict[str, Any]]:
    """The account's estimates, newest first, amounts as exact text."""
    e = vee_estimates.c
    query = select(vee_estimates).where(e.account == account)
    if state is not None:
        query = query.where(e.state == state)
    rows = conn.execute(query.order_by(e.start.desc()).limit(limit)).all()
    return [amount_row(r._mapping) for r in rows]
