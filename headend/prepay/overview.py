"""What an account page shows beyond the ledger: what restores supply, a reconnect owed after a
payment during an in-flight disconnect, late fees per bill, payment reversals (冲正), estimates.

Read-only; the API (``headend.api.prepay``) and the console (``headend.web``) show the same data.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, select

from headend.db.prepay_tables import prepay_actions, prepay_ledger, prepay_payments
from headend.prepay import disconnect, estimates, store
from headend.prepay.money import from_micro
from headend.prepay.settings import PrepaySettings


def to_restore(settings: PrepaySettings, acct: Any, balance_micro: int) -> Decimal | None:
    """The smallest payment in whole minor units that lifts the rounded balance above the
    reconnect threshold (0 when it is above already); None for postpaid accounts."""
    if acct.mode != "prepaid":
        return None
    money = settings.money
    restore = settings.reconnect_threshold - money.round(from_micro(balance_micro)) + money.quantum
    return money.round(max(restore, Decimal(0)))


def reconnect_owed(conn: Connection, account: str) -> dict[str, Any] | None:
    """The open disconnect the account paid for while its command was in flight: followed to its
    end, after which the reconnect opens (``settle``); None when there is none."""
    a = prepay_actions.c
    row = conn.execute(
        select(prepay_actions)
        .where(a.account == account, a.action == "disconnect", a.state.in_(disconnect.OPEN))
        .order_by(a.id.desc())
    ).first()
    if row is None:
        return None
    followed = [h for h in row.history if h.get("outcome") == "superseded"]
    if not followed:
        return None
    return {
        "action": row.id,
        "command": row.command_id,
        "state": row.state,
        "since": followed[0]["at"],
        "message": followed[0].get("message"),
    }


def late_fees(conn: Connection, account: str) -> list[dict[str, Any]]:
    """电费违约金 rows newest first, with the bill each accrues on and its day."""
    lg = prepay_ledger.c
    rows = conn.execute(
        select(lg.id, lg.at, lg.amount_micro, lg.reference, lg.reason, lg.bill)
        .where(lg.account == account, lg.kind == "late_fee")
        .order_by(lg.id.desc())
    ).all()
    out = []
    for r in rows:
        on_bill, _, day = r.reference.removeprefix("latefee:").rpartition(":")
        out.append(
            {
                "id": r.id,
                "at": r.at,
                "amount": str(-from_micro(r.amount_micro)),
                "accrues_on": on_bill,
                "day": day,
                "reason": r.reason,
                "billed_on": r.bill,
            }
        )
    return out


def reversals(conn: Connection, account: str) -> list[dict[str, Any]]:
    """Payment reversals (冲正) newest first, with the payment each one reverses."""
    lg, p = prepay_ledger.c, prepay_payments.c
    rows = conn.execute(
        select(
            lg.id,
            lg.at,
            lg.amount_micro,
            lg.reference,
            lg.reason,
            lg.created_by,
            p.channel,
            p.paid_at,
            p.amount_micro.label("paid_micro"),
        )
        .select_from(prepay_ledger.outerjoin(prepay_payments, p.reference == lg.reference))
        .where(lg.account == account, lg.kind == "payment_reversal")
        .order_by(lg.id.desc())
    ).all()
    return [
        {
            "id": r.id,
            "at": r.at,
            "amount": str(-from_micro(r.amount_micro)),
            "payment": r.reference,
            "channel": r.channel,
            "paid_at": r.paid_at,
            "paid": None if r.paid_micro is None else str(from_micro(r.paid_micro)),
            "reason": r.reason,
            "by": r.created_by,
        }
        for r in rows
    ]


def summary(conn: Connection, acct: Any, settings: PrepaySettings) -> dict[str, Any]:
    """Everything above for one account."""
    micro = store.balance_micro(conn, acct.id)
    restore = to_restore(settings, acct, micro)
    return {
        "balance": str(settings.money.round(from_micro(micro))),
        "to_restore": None if restore is None else str(restore),
        "reconnect_owed": reconnect_owed(conn, acct.id),
        "late_fees": late_fees(conn, acct.id),
        "reversals": reversals(conn, acct.id),
        "estimated": str(from_micro(estimates.outstanding_micro(conn, acct.id))),
        "estimates": estimates.listing(conn, acct.id, limit=50),
    }
