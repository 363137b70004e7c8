"""Top-ups (idempotent by the external reference), reversals (冲正), adjustments and fees,
the ledger."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from sqlalchemy import select

from headend.api.bounds import RowId
from headend.api.prepay.common import (
    AdjustmentIn,
    Id,
    Operator,
    ReversalIn,
    Supervisor,
    TopUpIn,
    Viewer,
    aware,
    context,
    scoped,
)
from headend.auth.deps import ops_of
from headend.auth.http import http_errors
from headend.db import reading, writing
from headend.db.errors import InvalidRequest
from headend.db.prepay_tables import (
    prepay_payments,
)
from headend.prepay import disconnect, jobs, payments, store
from headend.prepay.money import from_micro

router = APIRouter()


@router.post("/accounts/{account_id}/topups")
def top_up(
    request: Request, response: Response, account_id: Id, body: TopUpIn, user: Operator
) -> dict[str, Any]:
    """Credit a payment, idempotent by ``reference``: 201 the first time, 200 when repeated."""
    ops = ops_of(request)
    ctx = context(request)
    now = ops.clock.now()
    with http_errors():
        aware(body.paid_at, "paid_at")
        with writing(ops.engine) as conn:
            scoped(conn, user, account_id)
            paid, created = payments.top_up(
                conn,
                account_id,
                Decimal(body.amount),
                body.reference,
                channel=body.channel,
                paid_at=body.paid_at or now,
                money=ctx.settings.money,
                actor=user.name,
                now=now,
            )
            action = None
            if created and paid["state"] == "credited":
                action = jobs.settle(conn, account_id, now, ctx)
                pending = disconnect.open_action(conn, account_id)
                if action == "reconnect" and pending is not None:
                    disconnect.step(
                        conn,
                        pending,
                        now,
                        guards=ctx.guards,
                        commands_settings=ctx.commands,
                        settings=ctx.settings,
                    )
            balance = from_micro(store.balance_micro(conn, account_id))
    response.status_code = 201 if created else 200
    return {
        **paid,
        "balance": str(ctx.settings.money.round(balance)),
        "repeated": not created,
        "reconnect": action == "reconnect",
    }


@router.post("/payments/{reference}/reversal")
def reverse_payment(
    request: Request,
    reference: Annotated[str, Path(max_length=128)],
    body: ReversalIn,
    user: Supervisor,
) -> dict[str, Any]:
    """冲正: take back a credited payment (its own ledger kind, audited), then re-check the
    account (a reversal may bring a final notice or a disconnect)."""
    ops = ops_of(request)
    ctx = context(request)
    now = ops.clock.now()
    with http_errors(), writing(ops.engine) as conn:
        p = prepay_payments.c
        account = conn.execute(select(p.account).where(p.reference == reference)).scalar()
        if account is not None:
            scoped(conn, user, account)
        paid = payments.reverse_payment(
            conn, reference, reason=body.reason, actor=user.name, now=now
        )
        jobs.settle(conn, paid["account"], now, ctx)
        balance = from_micro(store.balance_micro(conn, paid["account"]))
    return {**paid, "balance": str(ctx.settings.money.round(balance))}


@router.post("/accounts/{account_id}/adjustments", status_code=201)
def adjust(
    request: Request, account_id: Id, body: AdjustmentIn, user: Supervisor
) -> dict[str, Any]:
    """An adjustment (退补) correcting a named period, or a fee; audited with the reason."""
    ops = ops_of(request)
    ctx = context(request)
    now = ops.clock.now()
    with http_errors():
        period = None
        if body.period_from is not None or body.period_to is not None:
            if body.period_from is None or body.period_to is None:
                raise InvalidRequest("give both period_from and period_to")
            aware(body.period_from, "period_from")
            aware(body.period_to, "period_to")
            if body.period_to <= body.period_from:
                raise InvalidRequest("period_to must be after period_from")
            period = (body.period_from, body.period_to)
        with writing(ops.engine) as conn:
            scoped(conn, user, account_id)
            ledger_id = store.adjust(
                conn,
                account_id,
                Decimal(body.amount),
                kind=body.kind,
                reference=body.reference,
                reason=body.reason,
                period=period,
                money=ctx.settings.money,
                actor=user.name,
                now=now,
            )
            if body.kind == "adjustment" and Decimal(body.amount) > 0:
                jobs.settle(conn, account_id, now, ctx)
    return {"ledger_id": ledger_id}


@router.get("/accounts/{account_id}/ledger")
def get_ledger(
    request: Request,
    account_id: Id,
    user: Viewer,
    after: RowId = 0,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 500,
    kind: Annotated[list[str] | None, Query(max_length=20)] = None,
) -> dict[str, Any]:
    """Ledger rows after id ``after`` (keyset pages), exact amounts; ``kind`` filters (repeat it
    for several: ``?kind=late_fee&kind=payment_reversal``)."""
    unknown = sorted(set(kind or ()) - set(store.LEDGER_KINDS))
    if unknown:
        with http_errors():
            raise InvalidRequest(f"kind: {unknown} unknown; use any of {list(store.LEDGER_KINDS)}")
    with reading(ops_of(request).engine) as conn:
        scoped(conn, user, account_id)
        rows = store.ledger(conn, account_id, after=after, limit=limit, kinds=kind)
    return {"items": rows, "next": rows[-1]["id"] if len(rows) == limit else None}
