"""The accounts list and the account page: balance and what restores supply, a reconnect owed
after a payment during an in-flight disconnect, late fees, payment reversals (冲正), estimates,
bills, actions, ledger, each linked point's tariff."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from headend.api.prepay.common import context
from headend.auth.roles import User
from headend.db import reading
from headend.web.pages.common import ops, page
from headend.web.render import render
from headend.web.views import prepay, tariffs

router = APIRouter()


STAGES = ("ok", "notice", "final", "off")


@router.get("/accounts")
def accounts_page(request: Request, stage: str | None = None) -> Response:
    """Accounts of the user's areas: balance, what restores supply, reconnects owed."""

    def build(user: User) -> Response:
        chosen = stage if stage in STAGES else None
        settings = context(request).settings
        with reading(ops(request).engine) as conn:
            rows = prepay.account_list(conn, user, settings, stage=chosen)
        return render(request, "accounts.html", user, rows=rows, stage=chosen or "", stages=STAGES)

    return page(request, build)


@router.get("/accounts/{account_id}")
def account_page(request: Request, account_id: str) -> Response:
    """Everything about one account a billing clerk needs (the user's areas only), with each
    linked point's tariff now."""

    def build(user: User) -> Response:
        settings = context(request).settings
        now = ops(request).clock.now()
        with reading(ops(request).engine) as conn:
            detail = prepay.account_detail(conn, user, account_id, settings, now)
            priced = tariffs.point_tariffs(conn, detail["points"], now)
        return render(
            request, "account.html", user, currency=settings.currency, tariffs=priced, **detail
        )

    return page(request, build)
