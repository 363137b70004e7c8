"""Sign-in, sign-out and the language / time-zone preferences."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from headend.auth.deps import ops_of
from headend.auth.http import client_address
from headend.auth.login import log_in
from headend.auth.roles import User
from headend.auth.throttle import Refused
from headend.db import writing
from headend.web import prefs as prefs_store
from headend.web.errors import CsrfRejected
from headend.web.pages.common import action, see_other
from headend.web.render import error_page, render
from headend.web.session import (
    LANGUAGES,
    Prefs,
    check_csrf,
    end_session,
    prefs_of,
    safe_next,
    start_session,
    valid_zone,
)

router = APIRouter()
Field = Annotated[str, Form()]
Optional = Annotated[str | None, Form()]


@router.get("/login")
def login_form(request: Request, next: str = "/") -> Response:
    """The sign-in form."""
    return render(
        request, "login.html", None, next=safe_next(next), failed=False, throttled=None, name=""
    )


@router.post("/login")
def login(
    request: Request,
    username: Field = "",
    password: Field = "",
    csrf_token: Optional = None,
    next: Field = "/",
) -> Response:
    """Check the password exactly as ``POST /api/v1/auth/token`` does; start a session."""
    try:
        check_csrf(request, csrf_token)
    except CsrfRejected as exc:
        return error_page(request, None, exc)
    ops = ops_of(request)
    outcome = None
    if username and password:
        outcome = log_in(ops, username[:64], password, client_address(request))
    record = outcome.user if outcome is not None else None
    if record is None:
        refused = outcome.refused if outcome is not None else None
        if refused is None and outcome is not None and outcome.lockouts:
            refused = outcome.lockouts[-1]
        wall = ops.wall.now()
        return render(
            request,
            "login.html",
            None,
            status_code=429 if refused is not None else 401,
            next=safe_next(next),
            failed=refused is None,
            throttled=_throttled(refused, wall),
            name=username[:64],
        )
    token, expires = ops.tokens.issue(record.name, record.token_version)
    response = see_other(safe_next(next))
    start_session(request, response, token, expires)
    return response


def _throttled(refused: Refused | None, now: datetime) -> dict[str, object] | None:
    """What the sign-in page says about a throttled attempt (None: not throttled)."""
    if refused is None:
        return None
    seconds = refused.retry_after(now)
    return {
        "scope": refused.scope,
        "locked": refused.reason == "locked",
        "minutes": (seconds + 59) // 60,
        "seconds": seconds,
    }


@router.post("/logout")
def logout(request: Request, csrf_token: Optional = None) -> Response:
    """End the session in this browser."""

    def build(_: User) -> Response:
        response = see_other("/login")
        end_session(request, response)
        return response

    return action(request, csrf_token, build)


@router.post("/prefs")
def set_prefs(
    request: Request,
    lang: Field = "",
    zone: Field = "",
    csrf_token: Optional = None,
    next: Field = "/",
) -> Response:
    """Store the language and time zone of the signed-in user (an unknown zone keeps the old)."""

    def build(user: User) -> Response:
        current = prefs_of(request, user.name)
        chosen = Prefs(
            lang=lang if lang in LANGUAGES else current.lang,
            zone=zone if zone and valid_zone(zone) else current.zone,
        )
        with writing(ops_of(request).engine) as conn:
            prefs_store.save(conn, user.name, chosen)
        return see_other(safe_next(next))

    return action(request, csrf_token, build)
