"""Postpaid bills (monthly, from daily frozen readings), arrears, and the payments reconciliation.

A postpaid account is charged from its daily frozen readings only (the charge job).  A month's
bill is issued once the month-end frozen reading has been charged (or at the configured cut-off,
``bill_cutoff_hours`` after the month's end), and carries every charge, reversal and fee up to the
month's end that no earlier bill carried (``issue_bills``), rounded to the minor unit, due
``bill_due_days`` after issue.  Payments pay the oldest bills first: a bill's unpaid part
is what the payments and credits received so far leave of the bills up to and including it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, and_, func, select, update

from headend import audit
from headend.db.dialect import insert_ignore
from headend.db.prepay_tables import (
    prepay_account_points,
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


# what a bill carries (an estimated bill's estimate, and its true-up on a later bill)
BILLED_KINDS = (
    "charge",
    "reversal",
    "fee",
    "late_fee",
    "tier_trueup",
    "estimate",
    "estimate_trueup",
)
PAYMENT_KINDS = ("topup", "adjustment", "payment_reversal")  # what pays bills, oldest first


def freeze_collected(conn: Connection, account: str, period_end: datetime) -> bool:
    """Whether every point linked to ``account`` at the period's end has been charged up to it
    (the month-end frozen reading was read and charged)."""
    pp, c = prepay_account_points.c, prepay_charges.c
    points = conn.execute(
        select(pp.point).where(
            pp.account == account,
            pp.valid_from < period_end,
            (pp.valid_to.is_(None)) | (pp.valid_to >= period_end),
        )
    ).scalars()
    for point in points:
        reached = conn.execute(
            select(func.max(c.end)).where(c.point == point, c.state == "active")
        ).scalar_one()
        if reached is None or reached < period_end:
            return False
    return True


def issue_bills(
    conn: Connection,
    now: datetime,
    zone: Any,
    money: MoneySettings,
    due_days: int,
    cutoff_hours: float = 72,
) -> int:
    """Issue last month's bill to every postpaid account that has none yet, once its month-end
    freeze has been collected or ``cutoff_hours`` after the month's end; how many issued.

    A bill carries every ledger row of ``BILLED_KINDS`` up to the period's end that no earlier bill
    carried: a charge created late for an earlier month (a back-filled reading, a reversal and its
    re-charge) goes on the next bill, never on none.  Amounts are rounded cumulatively (this bill
    = the rounded total of everything billed so far − what earlier bills said), so rounding never
    loses or invents more than half a fen.
    """
    local = now.astimezone(zone)
    prev = local.replace(day=1) - timedelta(days=1)
    start, end = month_bounds(prev.year, prev.month, zone)
    period = f"{prev:%Y-%m}"
    cut_off = now >= end + timedelta(hours=cutoff_hours)
    accounts = conn.execute(
        select(prepay_accounts.c.id).where(
            prepay_accounts.c.mode == "postpaid", prepay_accounts.c.closed_at.is_(None)
        )
    ).scalars()
    issued = 0
    lg = prepay_ledger.c
    for account in list(accounts):
        bill_id = f"{account}:{period}"
        if conn.execute(select(prepay_bills.c.id).where(prepay_bills.c.id == bill_id)).first():
            continue
        if not cut_off and not freeze_collected(conn, account, end):
            continue
        rows = conn.execute(
            select(lg.id, lg.kind, lg.amount_micro, lg.reference, lg.at).where(
                lg.account == account,
                lg.kind.in_(BILLED_KINDS),
                lg.bill.is_(None),
                lg.at <= end,
            )
        ).all()
        charge_ids = [int(r.reference.split(":", 1)[1]) for r in rows if r.kind == "charge"]
        energy = Decimal(0)
        for chunk in range(0, len(charge_ids), 500):
            energy += sum(
                (
                    Decimal(e)
                    for e in conn.execute(
                        select(prepay_charges.c.energy).where(
                            prepay_charges.c.id.in_(charge_ids[chunk : chunk + 500])
                        )
                    ).scalars()
                ),
                Decimal(0),
            )
        billed_before = -int(
            conn.execute(
                select(func.coalesce(func.sum(lg.amount_micro), 0)).where(
                    lg.account == account, lg.kind.in_(BILLED_KINDS), lg.bill.is_not(None)
                )
            ).scalar_one()
        )
        said_before = int(
            conn.execute(
                select(func.coalesce(func.sum(prepay_bills.c.amount_micro), 0)).where(
                    prepay_bills.c.account == account
                )
            ).scalar_one()
        )
        exact = billed_before - sum(r.amount_micro for r in rows)
        amount = to_micro(money.round(from_micro(exact))) - said_before
        by_kind: dict[str, int] = {}
        for r in rows:
            by_kind[r.kind] = by_kind.get(r.kind, 0) - r.amount_micro
        late = sum(1 for r in rows if r.at <= start)  # belonging to an earlier month
        done = conn.execute(
            insert_ignore(conn, prepay_bills).values(
                id=bill_id,
                account=account,
                period=period,
                period_start=start,
                period_end=end,
                energy=str(energy),
                amount_micro=amount,
                lines=[
                    {"kind": k, "amount": str(from_micro(v))} for k, v in sorted(by_kind.items())
                ]
                + [{"rows": len(rows), "late": late}],
                issued_at=now,
                due_at=now + timedelta(days=due_days),
            )
        )
        if not done.rowcount:
            continue
        ids = [r.id for r in rows]
        for chunk in range(0, len(ids), 500):
            conn.execute(
                update(prepay_ledger)
                .where(lg.id.in_(ids[chunk : chunk + 500]), lg.bill.is_(None))
                .values(bill=bill_id)
            )
        issued += 1
        audit.append(
            conn,
            "prepay",
            "prepay.bill",
            account,
            {
                "period": period,
                "amount": str(from_micro(amount)),
                "energy": str(energy),
                "rows": len(rows),
                "cut_off": cut_off,
            },
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
            prepay_ledger.c.kind.in_(PAYMENT_KINDS),
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
        if (r.state in ("credited", "reversed")) != (r[5] is not None)
        or (r[5] is not None and r[6] != r[2])
    ]
    orphans = conn.execute(
        select(lg.reference, lg.account, lg.amount_micro).where(
            lg.kind == "topup",
            lg.created_at >= start,
            lg.created_at < end,
            ~lg.reference.in_(select(p.reference)),
        )
    ).all()
    reversals = conn.execute(
        select(lg.reference, lg.account, lg.amount_micro, lg.reason, lg.created_by, p.state)
        .select_from(prepay_ledger.outerjoin(prepay_payments, p.reference == lg.reference))
        .where(lg.kind == "payment_reversal", lg.created_at >= start, lg.created_at < end)
        .order_by(lg.id)
    ).all()
    reversed_total = -sum(r.amount_micro for r in reversals)
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
        # 冲正: reversals made in the window (of payments received then or earlier), own kind
        "reversed": str(from_micro(reversed_total)),
        "reversals": [
            {
                "reference": r.reference,
                "account": r.account,
                "amount": str(from_micro(-r.amount_micro)),
                "reason": r.reason,
                "by": r.created_by,
            }
            for r in reversals
        ],
        "net": str(from_micro(credited - reversed_total)),
        "balanced": received == credited + sum(r[2] for r in rows if r.state in ("rejected",))
        and not mismatches
        and not orphans
        and all(r.state == "reversed" for r in reversals),
    }
