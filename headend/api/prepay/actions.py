"""An account's notifications and its disconnect/reconnect actions (an operator retries a
failed one)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import select

from headend.api.prepay.common import (
    Id,
    Operator,
    ReversalIn,
    Viewer,
    scoped,
)
from headend.auth.deps import ops_of
from headend.auth.http import http_errors
from headend.db import reading, writing
from headend.db.prepay_tables import (
    prepay_actions,
)
from headend.notify import outbox
from headend.prepay import disconnect

router = APIRouter()


@router.get("/accounts/{account_id}/notifications")
def get_notifications(request: Request, account_id: Id, user: Viewer) -> list[dict[str, Any]]:
    """Every notification of the account with its delivery status, newest first."""
    with reading(ops_of(request).engine) as conn:
        scoped(conn, user, account_id)
        return outbox.of_account(conn, account_id)


@router.get("/accounts/{account_id}/actions")
def get_actions(request: Request, account_id: Id, user: Viewer) -> list[dict[str, Any]]:
    """Disconnect and reconnect actions with every attempt, refusal and retry time."""
    with reading(ops_of(request).engine) as conn:
        scoped(conn, user, account_id)
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
        scoped(conn, user, account_id)
        action_id = disconnect.retry(
            conn, account_id, body.reason, actor=user.name, now=ops.clock.now()
        )
    return {"action": action_id}
