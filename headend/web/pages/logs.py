"""The audit log with the chain's verification status, and the notifications log."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from headend import audit
from headend.auth.roles import Role, User
from headend.db import reading, writing
from headend.web.pages.common import ops, page
from headend.web.render import render
from headend.web.views import prepay

router = APIRouter()
PAGE = 100


@router.get("/audit")
def audit_page(
    request: Request,
    after: int | None = None,
    actor: str | None = None,
    action: str | None = None,
    subject: str | None = None,
) -> Response:
    """Audit rows oldest first from ``after`` (fleet-wide supervisors and admins, as the API)."""

    def build(user: User) -> Response:
        user.require(Role.SUPERVISOR)
        user.require_fleet()
        filtered = bool(actor or action or subject)
        with reading(ops(request).engine) as conn:
            if after is None and not filtered:  # open on the newest page, as auditors want
                start = max(audit.count(conn) - PAGE, 0)
            else:
                start = max(after or 0, 0)
            rows = audit.entries(
                conn,
                after=start,
                limit=PAGE,
                actor=actor or None,
                action=action or None,
                subject=subject or None,
            )
        return render(
            request,
            "audit.html",
            user,
            rows=rows,
            after=start,
            previous=max(start - PAGE, 0) if start > 0 else None,
            following=rows[-1].id if len(rows) == PAGE else None,
            actor=actor or "",
            action=action or "",
            subject=subject or "",
        )

    return page(request, build)


@router.get("/audit/verify")
def audit_verify(request: Request) -> Response:
    """Recompute the chain now (admins, as ``GET /api/v1/audit/verify``); a fragment."""

    def build(user: User) -> Response:
        user.require(Role.ADMIN)
        started = ops(request).clock.now()
        with writing(ops(request).engine) as conn:
            result = audit.verify(conn)
        return render(request, "_audit_verify.html", user, result=result, at=started)

    return page(request, build)


@router.get("/notifications")
def notifications_page(request: Request, state: str | None = None) -> Response:
    """Reminders and notices sent to customers, with their delivery status."""

    def build(user: User) -> Response:
        chosen = state if state in {"pending", "sending", "sent", "failed"} else None
        with reading(ops(request).engine) as conn:
            rows = prepay.notifications(conn, user.areas, state=chosen)
        return render(request, "notifications.html", user, rows=rows, state=chosen or "")

    return page(request, build)
