"""``/api/v1/prepay``: tariffs, accounts and their metering points, top-ups (idempotent by the
payment's external reference), adjustments and fees, ledger and balance, notifications, disconnect
and reconnect actions, bills, and the daily payments reconciliation.

Roles: viewers read (within their area scope); operators take payments; supervisors post
adjustments and fees; admins define tariffs, accounts and points.  An account's area is its
points' area; scoped users see and act on accounts of their areas only.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection, select

from headend.api.bounds import Day, Instant, RowId
from headend.auth.deps import current_user, ops_of, require_role
from headend.auth.http import http_errors
from headend.auth.roles import Role, User
from headend.db import reading, writing
from headend.db.errors import InvalidRequest
from headend.db.prepay_tables import (
    prepay_accounts,
    prepay_actions,
    prepay_bills,
    prepay_payments,
)
from headend.notify import outbox
from headend.prepay import bills, disconnect, jobs, payments, store
from headend.prepay.money import from_micro

router = APIRouter(prefix="/prepay", tags=["prepayment"])
Viewer = Annotated[User, Depends(current_user)]
Operator = Annotated[User, Depends(require_role(Role.OPERATOR))]
Supervisor = Annotated[User, Depends(require_role(Role.SUPERVISOR))]
Admin = Annotated[User, Depends(require_role(Role.ADMIN))]
Id = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9:_.-]+$")]
MoneyText = Annotated[str, Field(pattern=r"^-?\d{1,12}(\.\d{1,6})?$", description="decimal text")]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TariffIn(_In):
    valid_from: Instant
    definition: dict[str, Any]
    name: str = Field(default="", max_length=200)


class AccountIn(_In):
    id: Id
    mode: Literal["prepaid", "postpaid"] = "prepaid"
    name: str = Field(default="", max_length=200)
    language: Literal["zh", "en"] = "zh"
    contacts: list[Annotated[str, Field(max_length=1000)]] = Field(
        default_factory=list, max_length=10
    )
    overdraft: MoneyText = "0"
    customer_class: str = Field(
        default="residential", min_length=1, max_length=32, pattern=r"^[a-z0-9_-]+$"
    )
    tier_extra: Annotated[str, Field(pattern=r"^\d{1,9}(\.\d{1,4})?$")] = "0"


class PointIn(_In):
    point: Id
    valid_from: Instant
    tariff: Id | None = None
    split: dict[str, Any] | None = None


class TopUpIn(_In):
    reference: Annotated[str, Field(min_length=1, max_length=128)]
    amount: MoneyText
    channel: str = Field(default="api", max_length=64)
    paid_at: Instant | None = None


class ReversalIn(_In):
    """A reason (a payment reversal, an operator's retry of a failed action)."""

    reason: str = Field(min_length=1, max_length=1000)


class AdjustmentIn(_In):
    kind: Literal["adjustment", "fee"] = "adjustment"
    reference: Annotated[str, Field(min_length=1, max_length=128)]
    amount: MoneyText
    reason: str = Field(min_length=1, max_length=1000)
    period_from: Instant | None = None
    period_to: Instant | None = None


def _ctx(request: Request) -> jobs.Context:
    state = request.app.state
    ctx = getattr(state, "prepay_ctx", None)
    if ctx is None:
        with http_errors():
            ctx = jobs.Context.from_extra(state.settings.extra, state.settings.source)
        state.prepay_ctx = ctx
    return ctx


def _aware(t: datetime | None, name: str) -> datetime | None:
    if t is not None and t.tzinfo is None:
        raise InvalidRequest(f"{name}: give a time zone, e.g. 2026-03-01T00:00:00+08:00")
    return t


def _scoped(conn: Connection, user: User, account_id: str) -> Any:
    with http_errors():
        acct = store.account(conn, account_id)
        user.require_areas([acct.area])
    return acct


def _account_view(conn: Connection, acct: Any, request: Request) -> dict[str, Any]:
    settings = _ctx(request).settings
    money = settings.money
    balance = from_micro(store.balance_micro(conn, acct.id))
    shown = money.round(balance)
    # The smallest payment in whole minor units that lifts the balance above the reconnect
    # threshold (decisions are on the rounded balance, so this is exact).
    restore = settings.reconnect_threshold - shown + money.quantum
    return {
        "id": acct.id,
        "name": acct.name,
        "mode": acct.mode,
        "area": acct.area,
        "language": acct.language,
        "contacts": [outbox.redact(u) if _usable(u) else "(unusable URL)" for u in acct.contacts],
        "overdraft": str(money.round(from_micro(acct.overdraft_micro))),
        "currency": money.currency,
        "balance": str(shown),
        "balance_exact": str(balance),
        "to_restore": str(money.round(max(restore, Decimal(0))))
        if acct.mode == "prepaid"
        else None,
        "stage": acct.stage,
        "supply": acct.supply,
        "customer_class": acct.customer_class,
        "tier_extra": acct.tier_extra,
        "final_notice_at": acct.final_notice_at,
        "disconnect_at": acct.disconnect_at,
        "closed_at": acct.closed_at,
    }


def _usable(url: str) -> bool:
    try:
        outbox.redact(url)
    except InvalidRequest:
        return False
    return True


# --- tariffs ---------------------------------------------------------------------------------


@router.get("/tariffs")
def list_tariffs(request: Request, user: Viewer) -> list[dict[str, Any]]:
    """Every tariff version."""
    with reading(ops_of(request).engine) as conn:
        return store.tariffs(conn)


@router.post("/tariffs/{tariff_id}", status_code=201)
def add_tariff(request: Request, tariff_id: Id, body: TariffIn, user: Admin) -> dict[str, Any]:
    """Add a tariff version in force from ``valid_from`` (not in the past, except the first)."""
    ops = ops_of(request)
    with http_errors():
        _aware(body.valid_from, "valid_from")
        with writing(ops.engine) as conn:
            store.put_tariff(
                conn,
                tariff_id,
                body.definition,
                body.valid_from,
                name=body.name,
                actor=user.name,
                now=ops.clock.now(),
            )
    return {"id": tariff_id, "valid_from": body.valid_from}


# --- accounts --------------------------------------------------------------------------------


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
            return _account_view(conn, store.account(conn, body.id), request)


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
        return [_account_view(conn, a, request) for a in conn.execute(query).all()]


@router.get("/accounts/{account_id}")
def get_account(request: Request, account_id: Id, user: Viewer) -> dict[str, Any]:
    """One account: balance, stage, supply, planned disconnect."""
    with reading(ops_of(request).engine) as conn:
        acct = _scoped(conn, user, account_id)
        view = _account_view(conn, acct, request)
        view["points"] = store.points(conn, account_id)
        return view


@router.get("/accounts/{account_id}/balance")
def get_balance(request: Request, account_id: Id, user: Viewer) -> dict[str, Any]:
    """The balance (the sum of the ledger), rounded and exact, with the forecast days left."""
    ops = ops_of(request)
    ctx = _ctx(request)
    with reading(ops.engine) as conn:
        acct = _scoped(conn, user, account_id)
        facts = jobs.facts_of(conn, acct, ops.clock.now(), ctx)
    return {
        "account": account_id,
        "currency": ctx.settings.currency,
        "balance": str(ctx.settings.money.round(facts.balance)),
        "balance_exact": str(facts.balance),
        "days_left": None if facts.days_left is None else str(facts.days_left),
    }


@router.post("/accounts/{account_id}/points", status_code=201)
def link_point(request: Request, account_id: Id, body: PointIn, user: Admin) -> dict[str, Any]:
    """Charge a metering point to the account from ``valid_from``."""
    ops = ops_of(request)
    with http_errors():
        _aware(body.valid_from, "valid_from")
        with writing(ops.engine) as conn:
            _scoped(conn, user, account_id)
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


@router.post("/accounts/{account_id}/topups")
def top_up(
    request: Request, response: Response, account_id: Id, body: TopUpIn, user: Operator
) -> dict[str, Any]:
    """Credit a payment, idempotent by ``reference``: 201 the first time, 200 when repeated."""
    ops = ops_of(request)
    ctx = _ctx(request)
    now = ops.clock.now()
    with http_errors():
        _aware(body.paid_at, "paid_at")
        with writing(ops.engine) as conn:
            _scoped(conn, user, account_id)
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
    ctx = _ctx(request)
    now = ops.clock.now()
    with http_errors(), writing(ops.engine) as conn:
        p = prepay_payments.c
        account = conn.execute(select(p.account).where(p.reference == reference)).scalar()
        if account is not None:
            _scoped(conn, user, account)
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
    ctx = _ctx(request)
    now = ops.clock.now()
    with http_errors():
        period = None
        if body.period_from is not None or body.period_to is not None:
            if body.period_from is None or body.period_to is None:
                raise InvalidRequest("give both period_from and period_to")
            _aware(body.period_from, "period_from")
            _aware(body.period_to, "period_to")
            if body.period_to <= body.period_from:
                raise InvalidRequest("period_to must be after period_from")
            period = (body.period_from, body.period_to)
        with writing(ops.engine) as conn:
            _scoped(conn, user, account_id)
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
) -> dict[str, Any]:
    """Ledger rows after id ``after`` (keyset pages), exact amounts."""
    with reading(ops_of(request).engine) as conn:
        _scoped(conn, user, account_id)
        rows = store.ledger(conn, account_id, after=after, limit=limit)
    return {"items": rows, "next": rows[-1]["id"] if len(rows) == limit else None}


@router.get("/accounts/{account_id}/notifications")
def get_notifications(request: Request, account_id: Id, user: Viewer) -> list[dict[str, Any]]:
    """Every notification of the account with its delivery status, newest first."""
    with reading(ops_of(request).engine) as conn:
        _scoped(conn, user, account_id)
        return outbox.of_account(conn, account_id)


@router.get("/accounts/{account_id}/actions")
def get_actions(request: Request, account_id: Id, user: Viewer) -> list[dict[str, Any]]:
    """Disconnect and reconnect actions with every attempt, refusal and retry time."""
    with reading(ops_of(request).engine) as conn:
        _scoped(conn, user, account_id)
        rows = conn.execute(
            select(prepay_actions)
            .where(prepay_actions.c.account == account_id)
            .order_by(prepay_actions.c.id.desc())
        ).all()
    return [dict(r._mapping) for r in rows]


@router.post("/accounts/{account_id}/actions/retry", status_code=201)
def retry_action(
    request: Request, account_id: Id, body: ReversalIn, user: Operator
) -> dict[str, Any]:
    """Try a failed disconnect or reconnect again (an operator's decision, with the reason)."""
    ops = ops_of(request)
    with http_errors(), writing(ops.engine) as conn:
        _scoped(conn, user, account_id)
        action_id = disconnect.retry(
            conn, account_id, body.reason, actor=user.name, now=ops.clock.now()
        )
    return {"action": action_id}


@router.get("/accounts/{account_id}/bills")
def get_bills(request: Request, account_id: Id, user: Viewer) -> list[dict[str, Any]]:
    """Postpaid bills with what is still unpaid of each overdue one."""
    ops = ops_of(request)
    with reading(ops.engine) as conn:
        _scoped(conn, user, account_id)
        rows = conn.execute(
            select(prepay_bills)
            .where(prepay_bills.c.account == account_id)
            .order_by(prepay_bills.c.period)
        ).all()
        unpaid = {o.bill: o.unpaid for o in bills.overdue(conn, account_id, ops.clock.now())}
    out = []
    for r in rows:
        item = dict(r._mapping)
        item["amount"] = str(from_micro(item.pop("amount_micro")))
        item["overdue_unpaid"] = str(unpaid[r.id]) if r.id in unpaid else None
        out.append(item)
    return out


@router.get("/reconciliation")
def reconciliation(request: Request, day: Day, user: Supervisor) -> dict[str, Any]:
    """Payments received on a local ``day`` against what was credited (fleet-wide users)."""
    ops = ops_of(request)
    ctx = _ctx(request)
    with http_errors():
        user.require_fleet()
    start = datetime.combine(day, datetime.min.time(), ctx.zone)
    with reading(ops.engine) as conn:
        return bills.reconciliation(conn, start, start + timedelta(days=1))
