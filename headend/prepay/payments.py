"""Payments: top-ups (idempotent by the payer's reference) and their reversal (冲正).

A top-up is recorded once per external reference (a repeat with the same content is answered
with the first result; other content under the same reference is a ``PaymentConflict``) and
credited as a ``topup`` ledger row; a payment to a closed account is recorded ``rejected``.

A reversal takes back a credited top-up that should not stand — a bank recalls a payment, a
cashier keyed the wrong account, a cheque bounced: the payment is marked ``reversed`` and a
``payment_reversal`` ledger row debits exactly what the ``topup`` row credited, with the reason
and who did it (audited).  The ledger is never edited; a reversal is its own kind, so the daily
reconciliation shows it next to the payments it takes back.  A payment is reversed once (the
ledger's unique ``(kind, reference)``); a rejected payment has nothing to reverse.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, select, update

from headend import audit
from headend.db.errors import Conflict, InvalidRequest, NotFound
from headend.db.prepay_tables import prepay_payments
from headend.prepay.errors import PaymentConflict
from headend.prepay.money import (
    MoneySettings,
    amount_row,
    check_balance,
    from_micro,
    payment,
    to_micro,
)
from headend.prepay.store import account, balance_micro, post


def top_up(
    conn: Connection,
    account_id: str,
    amount: Decimal,
    reference: str,
    *,
    channel: str,
    paid_at: datetime,
    money: MoneySettings,
    actor: str,
    now: datetime,
) -> tuple[dict[str, Any], bool]:
    """Record a payment and credit it, idempotent by ``reference``: (payment, created now)."""
    value = payment(amount, money, "amount")
    if value <= 0:
        raise InvalidRequest("amount: a top-up is positive")
    micro = to_micro(value)
    p = prepay_payments
    existing = conn.execute(select(p).where(p.c.reference == reference)).one_or_none()
    if existing is not None:
        if existing.account != account_id or existing.amount_micro != micro:
            raise PaymentConflict(
                f"payment {reference!r} was already received for account {existing.account} "
                f"over {from_micro(existing.amount_micro)}; a new payment needs a new reference"
            )
        return _payment(existing), False
    acct = account(conn, account_id)
    state, reason, ledger_id = "credited", None, None
    if acct.closed_at is not None:
        state, reason = "rejected", f"account {account_id} is closed"
    else:
        check_balance(balance_micro(conn, account_id) + micro)
        ledger_id = post(
            conn,
            account_id,
            "topup",
            micro,
            paid_at,
            reference,
            actor=actor,
            now=now,
            reason=f"payment via {channel or 'api'}",
        )
    conn.execute(
        p.insert().values(
            reference=reference,
            account=account_id,
            amount_micro=micro,
            channel=channel,
            paid_at=paid_at,
            received_at=now,
            state=state,
            reason=reason,
            ledger_id=ledger_id,
            received_by=actor,
        )
    )
    audit.append(
        conn,
        actor,
        "prepay.topup" if state == "credited" else "prepay.topup_rejected",
        account_id,
        {"reference": reference, "amount": str(value), "channel": channel, "reason": reason},
        at=now,
    )
    row = conn.execute(select(p).where(p.c.reference == reference)).one()
    return _payment(row), True


def _payment(row: Any) -> dict[str, Any]:
    return amount_row(row._mapping)


def reverse_payment(
    conn: Connection, reference: str, *, reason: str, actor: str, now: datetime
) -> dict[str, Any]:
    """Reverse the credited payment ``reference``: the payment row as it is now."""
    if not reason.strip():
        raise InvalidRequest("reason: say why the payment is reversed")
    p = prepay_payments.c
    row = conn.execute(select(prepay_payments).where(p.reference == reference)).one_or_none()
    if row is None:
        raise NotFound(f"no payment {reference!r}")
    if row.state != "credited":
        raise Conflict(f"payment {reference!r} is {row.state}: only a credited one is reversed")
    posted = post(
        conn,
        row.account,
        "payment_reversal",
        -row.amount_micro,
        now,
        reference,
        actor=actor,
        now=now,
        reason=reason,
    )
    if posted is None:
        raise Conflict(f"payment {reference!r} was already reversed")
    conn.execute(
        update(prepay_payments)
        .where(p.reference == reference, p.state == "credited")
        .values(state="reversed", reason=f"reversed by {actor}: {reason}")
    )
    audit.append(
        conn,
        actor,
        "prepay.payment_reversal",
        row.account,
        {"reference": reference, "amount": str(from_micro(row.amount_micro)), "reason": reason},
        at=now,
    )
    return _payment(conn.execute(select(prepay_payments).where(p.reference == reference)).one())
