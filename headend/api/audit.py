"""``/api/v1/audit``: read the audit log (fleet-wide supervisors and admins); verify the chain."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from headend import audit
from headend.api.bounds import Instant, RowId
from headend.auth.deps import ops_of, require_role
from headend.auth.http import http_errors
from headend.auth.roles import Role, User
from headend.db import reading, writing

router = APIRouter(prefix="/audit", tags=["audit"])
Supervisor = Annotated[User, Depends(require_role(Role.SUPERVISOR))]
Admin = Annotated[User, Depends(require_role(Role.ADMIN))]


@router.get("")
def list_entries(
    request: Request,
    user: Supervisor,
    after: RowId = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    actor: str | None = None,
    action: str | None = None,
    subject: str | None = None,
    since: Instant | None = None,
    until: Instant | None = None,
) -> list[dict[str, Any]]:
    """Entries with id > ``after``, oldest first (``action`` matches as a prefix)."""
    with http_errors():
        user.require_fleet()
    with reading(ops_of(request).engine) as conn:
        rows = audit.entries(
            conn,
            after=after,
            limit=limit,
            actor=actor,
            action=action,
            subject=subject,
            since=since,
            until=until,
        )
    return [
        {
            "id": e.id,
            "at": e.at,
            "actor": e.actor,
            "action": e.action,
            "subject": e.subject,
            "detail": e.detail,
            "prev_hash": e.prev_hash,
            "hash": e.hash,
        }
        for e in rows
    ]


@router.get("/verify")
def verify(request: Request, user: Admin) -> dict[str, Any]:
    """Recompute the chain; the first broken row if any."""
    with writing(ops_of(request).engine) as conn:
        result = audit.verify(conn)
    return {
        "ok": result.ok,
        "rows": result.rows,
        "head_id": result.head_id,
        "head_hash": result.head_hash,
        "broken_id": result.broken_id,
        "problem": result.problem,
    }
