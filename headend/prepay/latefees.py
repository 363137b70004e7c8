"""Late fees (电费违约金) on postpaid bills, per customer class, one ledger row per bill and day.

For an account of class ``k`` with ``[prepay.late_fees.k]`` configured, every local day ``d`` from
``start_days`` after a bill's due date on, once ``d`` is over, the bill's part still unpaid at the
end of ``d`` is charged ``rate`` (e.g. 1‰), rounded to the fen: a ``late_fee`` ledger row with the
reference ``latefee:<bill>:<d>`` (so a pass that runs twice, or two instances, charge a day once)
dated the end of ``d``.  Payments pay the oldest bill first (``bills.overdue``); a payment made
during ``d`` counts for ``d``.  Fees go on the next bill (``bills.BILLED_KINDS``).  The Chinese
rule (供电营业规则 art. 98) is 1‰ a day for residential customers and 2‰ (3‰ for arrears across
a year end) for others; the cross-year rate is not modelled: configure the class's rate.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Connection, select

from headend.db.prepay_tables import prepay_accounts, prepay_bills, prepay_ledger
from headend.prepay import store
from headend.prepay.bills import PAYMENT_KINDS
from headend.prepay.money import MoneySettings, from_micro, to_micro
from headend.prepay.settings import LateFee

HORIZON = timedelta(days=400)  # bills due longer ago than this accrue no more


def _day_end(d: date, zone: Any) -> datetime:
    return datetime.combine(d + timedelta(days=1), time(0), zone)


def accrue(
    conn: Connection,
    now: datetime,
    zone: Any,
    money: MoneySettings,
    rules: Mapping[str, LateFee],
) -> int:
    """Post every late fee due up to the last full local day; how many rows were posted."""
    a = prepay_accounts.c
    accounts = conn.execute(
        select(a.id, a.customer_class).where(
            a.mode == "postpaid", a.closed_at.is_(None), a.customer_class.in_(list(rules))
        )
    ).all()
    today = now.astimezone(zone).date()
    posted = 0
    for acct in accounts:
        rule = rules[acct.customer_class]
        bills = conn.execute(
            select(prepay_bills)
            .where(prepay_bills.c.account == acct.id, prepay_bills.c.due_at > now - HORIZON)
            .order_by(prepay_bills.c.period)
        ).all()
        if not bills:
            continue
        lg = prepay_ledger.c
        credits = conn.execute(
            select(lg.at, lg.amount_micro)
            .where(lg.account == acct.id, lg.kind.in_(PAYMENT_KINDS))
            .order_by(lg.at)
        ).all()
        done = set(
            conn.execute(
                select(lg.reference).where(lg.account == acct.id, lg.kind == "late_fee")
            ).scalars()
        )
        earlier = sum(
            b.amount_micro
            for b in conn.execute(
                select(prepay_bills.c.amount_micro).where(
                    prepay_bills.c.account == acct.id, prepay_bills.c.due_at <= now - HORIZON
                )
            )
        )
        cumulative = earlier
        for bill in bills:
            cumulative += bill.amount_micro
            day = bill.due_at.astimezone(zone).date() + timedelta(days=rule.start_days)
            while day < today:
                end = _day_end(day, zone)
                paid = sum(c.amount_micro for c in credits if c.at < end)
                unpaid = min(bill.amount_micro, max(0, cumulative - paid))
                if unpaid <= 0:
                    break  # paid in full (a later reversal reopens it on the next pass)
                ref = f"latefee:{bill.id}:{day.isoformat()}"
                fee = money.round(from_micro(unpaid) * rule.rate)
                if ref not in done and fee > 0:
                    store.post(
                        conn,
                        acct.id,
                        "late_fee",
                        -to_micro(fee),
                        end,
                        ref,
                        actor="prepay",
                        now=now,
                        reason=f"{rule.rate} a day of {from_micro(unpaid)} unpaid on {bill.id}",
                    )
                    posted += 1
                day += timedelta(days=1)
    return posted


__all__ = ["accrue"]
