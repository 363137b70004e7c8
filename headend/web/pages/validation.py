"""The validation queue (VEE): readings held by a rule, and operators' decisions on them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from sqlalchemy import select

from headend.auth.roles import Role, User
from headend.db import reading, writing
from headend.db.tables import meters
from headend.vee import store
from headend.web.pages.common import action, ops, page, see_other
from headend.web.render import render

router = APIRouter()
Field = Annotated[str | None, Form()]
STATES = ("open", "accepted", "corrected", "rejected", "cleared")


@router.get("/validation")
def validation_page(request: Request, state: str | None = "open") -> Response:
    """Held readings of the user's areas, newest rule failures first, with the decision form."""

    def build(user: User) -> Response:
        chosen = state if state in STATES else None
        with reading(ops(request).engine) as conn:
            rows = store.queue(conn, state=chosen, areas=user.areas, limit=500)
        rows.reverse()
        return render(request, "validation.html", user, rows=rows, state=chosen or "")

    return page(request, build)


@router.post("/validation/{flag_id}/decision")
def decide(
    request: Request,
    flag_id: int,
    decision: Field = None,
    reason: Field = None,
    value: Field = None,
    csrf_token: Field = None,
) -> Response:
    """Accept, correct or reject a held reading (operators of the meter's area; audited)."""

    def build(user: User) -> Response:
        user.require(Role.OPERATOR)
        with writing(ops(request).engine) as conn:
            row = store.flag(conn, flag_id)
            area = conn.execute(
                select(meters.c.area)
                .where(meters.c.id == row.meter)
                .order_by(meters.c.valid_from.desc())
            ).scalar()
            user.require_areas([area])
            store.resolve(
                conn,
                flag_id,
                decision or "",
                reason=reason or "",
                value=(value or None) if decision == "correct" else None,
                actor=user.name,
                now=ops(request).clock.now(),
            )
        return see_other("/validation")

    return action(request, csrf_token, build)
