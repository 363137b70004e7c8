"""The commands page with the supervisors' approval queue, one command, and its live status."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from headend.auth.roles import Role, User
from headend.commands import views
from headend.commands.states import State
from headend.db import reading, writing
from headend.web.pages.common import action, hx, ops, page, see_other
from headend.web.render import render
from headend.web.views import commands as command_views

router = APIRouter()
Optional = Annotated[str | None, Form()]
SHOWN = 100


@router.get("/commands")
def commands_page(request: Request, state: str | None = None) -> Response:
    """Recent commands (newest first) and, for supervisors, those awaiting their approval."""

    def build(user: User) -> Response:
        chosen = state if state in {s.value for s in State} else None
        with reading(ops(request).engine) as conn:
            queue = views.list_commands(conn, user, state=State.AWAITING_APPROVAL, limit=SHOWN)
            recent = views.list_commands(conn, user, state=chosen, limit=SHOWN)
        return render(
            request,
            "commands.html",
            user,
            queue=queue,
            recent=recent,
            state=chosen or "",
            states=[s.value for s in State if s is not State.SENDING],
        )

    return page(request, build)


@router.get("/commands/{command_id}")
def command_page(request: Request, command_id: str) -> Response:
    """One command: who, when, why, per-gateway dispatches, per-meter outcomes, readings."""

    def build(user: User) -> Response:
        with reading(ops(request).engine) as conn:
            view = views.get(conn, user, command_id)
        return render(request, "command.html", user, c=view, progress=command_views.progress(view))

    return page(request, build)


@router.get("/commands/{command_id}/status")
def command_status(request: Request, command_id: str, targets: bool = False) -> Response:
    """The live status fragment; it stops asking once the command is final.

    ``targets``: asked by the command's own page, which also gets its per-meter table (out of
    band), so outcomes appear as gateways report them.
    """

    def build(user: User) -> Response:
        with reading(ops(request).engine) as conn:
            view = views.get(conn, user, command_id)
        return render(
            request,
            "_command_status.html",
            user,
            c=view,
            progress=command_views.progress(view),
            targets=targets,
            oob=True,
        )

    return page(request, build)


def _decide(request: Request, command_id: str, token: str | None, approve: bool) -> Response:
    def build(user: User) -> Response:
        user.require(Role.SUPERVISOR if approve else Role.OPERATOR)
        with writing(ops(request).engine) as conn:
            refusal = command_views.decide(conn, ops(request), user, command_id, approve)
        if refusal is not None:
            code = 403 if refusal.kind == "forbidden" else 409
            if hx(request):
                return render(
                    request,
                    "_error_fragment.html",
                    user,
                    status_code=code,
                    message=refusal.message,
                )
            return render(
                request, "error.html", user, status_code=code, code=code, message=refusal.message
            )
        return see_other(f"/commands/{command_id}")

    return action(request, token, build)


@router.post("/commands/{command_id}/approve")
def approve(request: Request, command_id: str, csrf_token: Optional = None) -> Response:
    """A second user, a supervisor, approves (the guard rails are checked again)."""
    return _decide(request, command_id, csrf_token, approve=True)


@router.post("/commands/{command_id}/cancel")
def cancel(request: Request, command_id: str, csrf_token: Optional = None) -> Response:
    """Cancel a command not sent yet."""
    return _decide(request, command_id, csrf_token, approve=False)
