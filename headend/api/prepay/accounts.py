"""``/prepay/accounts``: accounts, their points, balance and what the account page shows."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from sqlalchemy import select

from headend.api.prepay.common import (
    AccountIn,
    Admin,
    Id,
    PointIn,
    Viewer,
    account_view,
    aware,
    context,
    scoped,
)
from headend.auth.deps import ops_of
from headend.auth.http import http_errors
from headend.db import reading, writing
from headend.db.prepay_tables import (
    prepay_accounts,
)
from headend.notify import outbox
from headend.prepay import estimates, jobs, overview, store

router = APIRouter()


@router.post("/accounts", status_code=201)
def create_account(request: Request, body: AccountIn, user: Admin) -> dict[str, Any]:
    """Open an account (points are linked separately)."""
    ops = ops_of(request)
    with http_errors():
        for url in body.contacts:
            outbox.redact(url)
        with writing(ops.engine) as conn:
            store.create_account(
                conn,
                body.id,
                mode=body.mode,
                name=body.name,
                language=body.language,
                contacts=body.contacts,
                overdraft=Decimal(body.overdraft),
                customer_class=body.customer_class,
                tier_extra=Decimal(body.tier_extra),
                actor=user.name,
                now=ops.clock.now(),
            )
            return account_view(conn, store.account(conn, body.id), request)


@router.get("/accounts")
def list_accounts(
    request: Request,
    user: Viewer,
    stage: str | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 500,
) -> list[dict[str, Any]]:
    """Accounts in the user's areas with their balances."""
    with reading(ops_of(request).engine) as conn:
        query = select(prepay_accounts).order_by(prepay_accounts.c.id).limit(limit)
        if stage is not None:
            query = query.where(prepay_accounts.c.stage == stage)
        if user.areas is not None:
            query = query.where(prepay_accounts.c.area.in_(sorted(user.areas)))
        return [account_view(conn, a, request) for a in conn.execute(query).all()]


@router.get("/accounts/{account_id}")
def get_account(request: Request, account_id: Id, user: Viewer) -> dict[str, Any]:
    """One account: balance, stage, supply, planned disconnect."""
    with reading(ops_of(request).engine) as conn:
        acct = scoped(conn, user, account_id)
        view = account_view(conn, acct, request)
        view["points"] = store.points(conn, account_id)
        return view


@router.get("/accounts/{account_id}/balance")
def get_balance(request: Request, account_id: Id, user: Viewer) -> dict[str, Any]:
    """The balance (the sum of the ledger), rounded and exact, with the forecast days left; the
    active estimates it includes and the metered balance without them (what the final notice and
    a disconnect look at)."""
    ops = ops_of(request)
    ctx = context(request)
    with reading(ops.engine) as conn:
        acct = scoped(conn, user, account_id)
        facts = jobs.facts_of(conn, acct, ops.clock.now(), ctx)
    return {
        "account": account_id,
        "currency": ctx.settings.currency,
        "balance": str(ctx.settings.money.round(facts.balance)),
        "balance_exact": str(facts.balance),
        "days_left": None if facts.days_left is None else str(facts.days_left),
        "estimated": str(facts.estimated),
        "balance_metered": str(facts.metered_balance),
    }


@router.post("/accounts/{account_id}/points", status_code=201)
def link_point(request: Request, account_id: Id, body: PointIn, user: Admin) -> dict[str, Any]:
    """Charge a metering point to the account from ``valid_from``."""
    ops = ops_of(request)
    with http_errors():
        aware(body.valid_from, "valid_from")
        with writing(ops.engine) as conn:
            scoped(conn, user, account_id)
            store.link_point(
                conn,
                account_id,
                body.point,
                body.valid_from,
                tariff=body.tariff,
                split=body.split,
                actor=user.name,
                now=ops.clock.now(),
            )
            return {"account": account_id, "points": store.points(conn, account_id)}


@router.get("/accounts/{account_id}/overview")
def get_overview(request: Request, account_id: Id, user: Viewer) -> dict[str, Any]:
    """What the account page shows: ``to_restore``, a reconnect owed after a payment during an
    in-flight disconnect, late fees per bill, payment reversals (冲正), estimates."""
    with reading(ops_of(request).engine) as conn:
        acct = scoped(conn, user, account_id)
        return {"account": account_id, **overview.summary(conn, acct, context(request).settings)}


@router.get("/accounts/{account_id}/estimates")
def get_estimates(
    request: Request,
    account_id: Id,
    user: Viewer,
    state: Literal["active", "trued_up"] | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 200,
) -> list[dict[str, Any]]:
    """Estimated intervals of open gaps (VEE), newest first, with their true-ups."""
    with reading(ops_of(request).engine) as conn:
        scoped(conn, user, account_id)
        return estimates.listing(conn, account_id, state=state, limit=limit)
