"""Shared pieces of the prepayment API: roles, request bodies, scoping, the account view."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection

from headend.api.bounds import Instant
from headend.auth.deps import current_user, require_role
from headend.auth.http import http_errors
from headend.auth.roles import Role, User
from headend.db.errors import InvalidRequest
from headend.notify import outbox
from headend.prepay import jobs, overview, store
from headend.prepay.money import from_micro

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


def context(request: Request) -> jobs.Context:
    state = request.app.state
    ctx = getattr(state, "prepay_ctx", None)
    if ctx is None:
        with http_errors():
            ctx = jobs.Context.from_extra(state.settings.extra, state.settings.source)
        state.prepay_ctx = ctx
    return ctx


def aware(t: datetime | None, name: str) -> datetime | None:
    if t is not None and t.tzinfo is None:
        raise InvalidRequest(f"{name}: give a time zone, e.g. 2026-03-01T00:00:00+08:00")
    return t


def scoped(conn: Connection, user: User, account_id: str) -> Any:
    with http_errors():
        acct = store.account(conn, account_id)
        user.require_areas([acct.area])
    return acct


def account_view(conn: Connection, acct: Any, request: Request) -> dict[str, Any]:
    settings = context(request).settings
    money = settings.money
    micro = store.balance_micro(conn, acct.id)
    balance = from_micro(micro)
    shown = money.round(balance)
    # The smallest payment in whole minor units that lifts the balance above the reconnect
    # threshold (decisions are on the rounded balance, so this is exact).
    restore = overview.to_restore(settings, acct, micro)
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
        "to_restore": None if restore is None else str(restore),
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
