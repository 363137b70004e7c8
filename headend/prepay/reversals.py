"""Payment reversal (冲正): taking back a credited top-up that should not stand.

A bank recalls a payment, a cashier keyed the wrong account, a cheque bounced: the payment is
marked ``reversed`` and a ``payment_reversal`` ledger row debits exactly what the ``topup`` row
credited, with the reason and who did it (audited).  The ledger is never edited; a reversal is
its own kind, so the daily reconciliation shows it next to the payments it takes back.  A payment
is reversed once (the ledger's unique ``(kind, reference)``); a rejected payment has nothing to
reverse.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, update

from headend import audit
from headend.db.errors import Conflict, InvalidRequest, NotFound
from headend.db.prepay_tables import prepay_payments
from headend.prepay import store
from headend.prepay.money import from_micro


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
    posted = store.post(
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
    out = dict(conn.execute(select(prepay_payments).where(p.reference == reference)).one()._mapping)
    out["amount"] = str(from_micro(out.pop("amount_micro")))
    return out
