"""Tiers (阶梯电价) per account per tier period: the true-up that makes tier prices exact.

Charges are priced as they arrive, one metering point at a time, so an account with two meters, a
back-filled reading or a change of occupant can see a tier step in the wrong place.  The true-up
recomputes, per account, tariff and tier period (a local month, or the tier year starting on
``tier_year_start``), what the tier lines *should* cost and posts the difference as a
``tier_trueup`` ledger row (never editing a charge)::

    energy of the account's tier lines, in charge-end order  e₁ e₂ … (all its points together)
    step bounds   B_k = Σ_versions upto_k × |version ∩ period ∩ account active| / |period|
                        + tier_extra × |period ∩ account active| / |period|
    correct       Σ eᵢ split at the cumulative bounds × the step price of the version in force
                  at eᵢ's charge start
    posted        correct − charged − earlier true-ups of the same (account, tariff, period)

Pro-rating follows the account's own active span (its points' links and its closing): a new
connection (新装), a closure (销户) or a change of occupant (过户: the old account ends, the new one
starts at zero) gets the share of the allowance for the days it was active.  A meter replacement
changes nothing (the point and the account stay).  ``tier_extra`` is the per-account allowance
(e.g. large households, 多人口家庭) in kWh per tier period, added to every step bound.

The result depends only on the account's total energy per period and its order in time, never on
how the intervals were split or in which order the points were charged.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, select

from headend.db.prepay_tables import (
    prepay_account_points,
    prepay_accounts,
    prepay_charges,
    prepay_ledger,
)
from headend.prepay import store
from headend.prepay.charges import YearStart, tier_year
from headend.prepay.money import to_micro
from headend.prepay.tariffs import TariffBook, TieredTariff, TouTieredTariff


def period_bounds(label: str, zone: Any, year_start: YearStart) -> tuple[datetime, datetime]:
    """The local span ``[start, end)`` of a tier period label (``2026`` or ``2026-03``)."""
    if len(label) == 4:
        month, day = year_start
        year = int(label)
        return datetime(year, month, day, tzinfo=zone), datetime(year + 1, month, day, tzinfo=zone)
    year, month = int(label[:4]), int(label[5:7])
    start = datetime(year, month, 1, tzinfo=zone)
    return start, datetime(year + month // 12, month % 12 + 1, 1, tzinfo=zone)


def _overlap(a: datetime, b: datetime, c: datetime, d: datetime) -> Decimal:
    span = min(b, d) - max(a, c)
    return Decimal(max(0, int(span.total_seconds())))


def _active(conn: Connection, account: Any) -> tuple[datetime, datetime]:
    pp = prepay_account_points.c
    links = conn.execute(select(pp.valid_from, pp.valid_to).where(pp.account == account.id)).all()
    start = min(r.valid_from for r in links)
    ends = [r.valid_to for r in links]
    far = datetime(9999, 1, 1, tzinfo=start.tzinfo)
    end = far if any(e is None for e in ends) else max(e for e in ends if e is not None)
    if account.closed_at is not None:
        end = min(end, account.closed_at)
    return start, end


def bounds(
    book: TariffBook,
    tariff: str,
    span: tuple[datetime, datetime],
    active: tuple[datetime, datetime],
    extra: Decimal,
) -> list[Decimal]:
    """The pro-rated step bounds of ``tariff`` over the period ``span`` (see the docstring)."""
    whole = Decimal(int((span[1] - span[0]).total_seconds()))
    versions = book.versions(tariff)
    out: list[Decimal] | None = None
    for n, v in enumerate(versions):
        if not isinstance(v.definition, TieredTariff | TouTieredTariff):
            continue
        until = versions[n + 1].valid_from if n + 1 < len(versions) else span[1]
        lo, hi = max(v.valid_from, active[0]), min(until, active[1])
        share = _overlap(lo, hi, *span) / whole
        uptos = [s.upto for s in v.definition.steps if s.upto is not None]
        if out is None:
            out = [Decimal(0)] * len(uptos)
        if len(uptos) != len(out):  # a version with other steps: its bounds from here on
            out = [Decimal(0)] * len(uptos)
        out = [o + u * share for o, u in zip(out, uptos, strict=True)]
    share = _overlap(*active, *span) / whole
    return [b + extra * share for b in (out or [])]


def _price(book: TariffBook, tariff: str, at: datetime, step: int) -> Decimal:
    definition = book.at(tariff, at).definition
    if not isinstance(definition, TieredTariff | TouTieredTariff):
        return Decimal(0)
    return definition.steps[min(step, len(definition.steps) - 1)].price


def true_up(
    conn: Connection,
    account_id: str,
    book: TariffBook,
    zone: Any,
    now: datetime,
    year_start: YearStart = (1, 1),
    since: datetime | None = None,
) -> int:
    """Post the tier true-ups the account needs now; how many ledger rows were posted.

    ``since``: only tier periods starting at or after it (older periods are settled: charges
    created later than ``lookback_days`` cannot reach them).
    """
    acct = store.account(conn, account_id)
    c = prepay_charges.c
    query = select(c.id, c.start, c.end, c.lines).where(
        c.account == account_id, c.state == "active"
    )
    if since is not None:
        query = query.where(c.end > since)
    rows = conn.execute(query.order_by(c.end, c.id)).all()
    groups: dict[tuple[str, str], list[tuple[datetime, Decimal, Decimal]]] = defaultdict(list)
    for r in rows:
        for ln in r.lines:
            if str(ln.get("slot", "")).startswith(("step", "surcharge")):
                groups[(ln["tariff"], ln["period"])].append(
                    (r.start, Decimal(ln["energy"]), Decimal(ln["price"]))
                )
    if not groups:
        return 0
    active = _active(conn, acct)
    extra = Decimal(acct.tier_extra or 0)
    lg = prepay_ledger.c
    posted = 0
    for (tariff, period), lines in sorted(groups.items()):
        span = period_bounds(period, zone, year_start)
        if since is not None and span[0] < since:
            continue  # a period only partly loaded: settled before ``since``
        limits = bounds(book, tariff, span, active, extra)
        charged = sum((e * p for _, e, p in lines), Decimal(0))
        correct, used = Decimal(0), Decimal(0)
        for start, energy, _ in lines:
            left, lo = energy, used
            for k in range(len(limits) + 1):
                top = limits[k] if k < len(limits) else None
                part = left if top is None else max(Decimal(0), min(left, top - lo))
                if part:
                    correct += part * _price(book, tariff, start, k)
                    left -= part
                    lo += part
                if not left:
                    break
            used += energy
        key = f"tier:{account_id}:{tariff}:{period}"
        earlier = (
            conn.execute(
                select(lg.amount_micro).where(
                    lg.account == account_id,
                    lg.kind == "tier_trueup",
                    lg.reference.like(f"{key}:%"),
                )
            )
            .scalars()
            .all()
        )
        # A debit when the tiers cost more than charged: ledger amounts are − for debits.
        delta = -to_micro(correct - charged) - sum(earlier)
        if delta == 0:
            continue
        store.post(
            conn,
            account_id,
            "tier_trueup",
            delta,
            now,
            f"{key}:{len(earlier) + 1}",
            actor="prepay",
            now=now,
            reason=(
                f"tiers of {tariff} {period} on the account's {sum(e for _, e, _ in lines)} kWh:"
                f" {correct.quantize(Decimal('0.000001'))} due, {charged} charged"
                f" (bounds {[str(b.quantize(Decimal('0.0001'))) for b in limits]})"
            ),
            period=span,
        )
        posted += 1
    return posted


def true_up_all(
    conn_factory: Any,
    zone: Any,
    now: datetime,
    year_start: YearStart = (1, 1),
    lookback: timedelta = timedelta(days=62),
) -> int:
    """True up every open account with tiered charges (one transaction per account), over the
    tier periods from the tier year that ``now − lookback`` falls in."""
    back = (now - lookback).astimezone(zone)
    month, day = year_start
    since = datetime(tier_year(back, year_start), month, day, tzinfo=zone)
    with conn_factory() as conn:
        book = store.tariff_book(conn)
        ids = list(
            conn.execute(
                select(prepay_accounts.c.id).where(
                    prepay_accounts.c.closed_at.is_(None)
                    | (prepay_accounts.c.closed_at > now - timedelta(days=400))
                )
            ).scalars()
        )
    posted = 0
    for account_id in ids:
        with conn_factory() as conn:
            posted += true_up(conn, account_id, book, zone, now, year_start, since)
    return posted


__all__ = ["bounds", "period_bounds", "true_up", "true_up_all"]
