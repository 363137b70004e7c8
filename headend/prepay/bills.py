"""Postpaid bills (monthly, from daily frozen readings), arrears, and the payments reconciliation.

A postpaid account is charged from its daily frozen readings only (the charge job), so a month's
bill is the sum of its charges whose interval starts in that local month, rounded to the minor
unit, due ``bill_due_days`` after issue.  Payments pay the oldest bills first: a bill's unpaid part
is what the payments and credits received so far leave of the bills up to and including it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, and_, func, select

from headend import audit
from headend.db.dialect import insert_ignore
from headend.db.prepay_tables import (
    prepay_accounts,
    prepay_bills,
    prepay_charges,
    prepay_ledger,
    prepay_payments,
)
from headend.prepay.money import MoneySettings, from_micro, to_micro
from headend.prepay.reminders import Overdue


def month_bounds(year: int, month: int, zone: Any) -> tuple[datetime, datetime]:
    """The local month as aware instants ``[start, end)``."""
    start = datetime(year, month, 1, tzinfo=zone)
    nxt = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=zone)
    return start, nxt


def issue_bills(
    conn: Connection, now: datetime, zone: Any, money: MoneySettings, due_days: int
) -> int:
    """Issue last month's bill to every postpaid account that has none yet; how many issued."""
    local = now.astimezone(zone)
    prev = local.replace(day=1) - timedelta(days=1)
    start, end = month_bounds(prev.year, prev.month, zone)
    period = f"{prev:%Y-%m}"
    accounts = conn.execute(
        select(prepay_accounts.c.id).where(
            prepay_accounts.c.mode == "postpaid", prepay_accounts.c.closed_at.is_(None)
        )
    ).scalars()
    issued = 0
    for account in accounts:
        c = prepay_charges.c
        rows = conn.execute(
            select(c.energy, c.amount_micro).where(
                c.account == account, c.state == "active", c.start >= start, c.start < end
            )
        ).all()
        energy = sum((Decimal(r.energy) for r in rows), Decimal(0))
        amount = money.round(from_micro(sum(r.amount_micro for r in rows)))
        done = conn.execute(
            insert_ignore(conn, prepay_bills).values(
                id=f"{account}:{period}",
                account=account,
                period=period,
                period_start=start,
                period_end=end,
                energy=str(energy),
                amount_micro=to_micro(amount),
                lines=[{"charges": len(rows)}],
                issued_at=now,
                due_at=now + timedelta(days=due_days),
            )
        )
        if done.rowcount:
            issued += 1
            audit.append(
                conn,
                "prepay",
                "prepay.bill",
                account,
                {"period": period, "amount": str(amount), "energy": str(energy)},
                at=now,
            )
    return issued


def overdue(conn: Connection, account: str, now: datetime) -> list[Overdue]:
    """The account's bills past due and not paid in full (oldest bills are paid first)."""
    bills = conn.execute(
        select(prepay_bills)
        .where(prepay_bills.c.account == account)
        .order_by(prepay_bills.c.period)
    ).all()
    if not bills:
        return []
    credits = conn.execute(
        select(func.coalesce(func.sum(prepay_ledger.c.amount_micro), 0)).where(
            prepay_ledger.c.account == account,
            prepay_ledger.c.kind.in_(["topup", "adjustment"]),
        )
    ).scalar_one()
    left = int(credits)
    out = []
    for b in bills:
        paid = min(left, b.amount_micro)
        left -= paid
        unpaid = b.amount_micro - paid
        if unpaid > 0 and b.due_at <= now:
            out.append(Overdue(b.id, b.period, from_micro(unpaid), b.due_at))
    return out


def reconciliation(conn: Connection, start: datetime, end: datetime) -> dict[str, Any]:
    """Payments received in ``[start, end)`` against what was credited to the ledger."""
    p, lg = prepay_payments.c, prepay_ledger.c
    rows = conn.execute(
        select(p.reference, p.account, p.amount_micro, p.state, p.channel, lg.id, lg.amount_micro)
        .select_from(
            prepay_payments.outerjoin(
                prepay_ledger, and_(lg.kind == "topup", lg.reference == p.reference)
            )
        )
        .where(p.received_at >= start, p.received_at < end)
        .order_by(p.received_at)
    ).all()
    received = sum(r[2] for r in rows)
    credited = sum(r[6] or 0 for r in rows)
    mismatches = [
        {
            "reference": r.reference,
            "account": r.account,
            "state": r.state,
            "received": str(from_micro(r[2])),
            "credited": str(from_micro(r[6] or 0)),
        }
        for r in rows
        if (r.state == "credited") != (r[5] is not None) or (r[5] is not None and r[6] != r[2])
    ]
    orphans = conn.execute(
        select(lg.reference, lg.account, lg.amount_micro).where(
            lg.kind == "topup",
            lg.created_at >= start,
            lg.created_at < end,
            ~lg.reference.in_(select(p.reference)),
        )
    ).all()
    by_channel: dict[str, dict[str, Any]] = {}
    for r in rows:
        ch = by_channel.setdefault(r.channel or "", {"count": 0, "received": 0})
        ch["count"] += 1
        ch["received"] += r[2]
    return {
        "from": start,
        "to": end,
        "payments": len(rows),
        "received": str(from_micro(received)),
        "credited": str(from_micro(credited)),
        "rejected": [
            {"reference": r.reference, "account": r.account, "amount": str(from_micro(r[2]))}
            for r in rows
            if r.state == "rejected"
        ],
        "mismatches": mismatches,
        "credited_without_payment": [
            {"reference": o.reference, "account": o.account, "amount": str(from_micro(o[2]))}
            for o in orphans
        ],
        "by_channel": {
            k: {"count": v["count"], "received": str(from_micro(v["received"]))}
            for k, v in sorted(by_channel.items())
        },
        "balanced": received == credited + sum(r[2] for r in rows if r.state == "rejected")
        and not mismatches
        and not orphans,
    }
