"""What every page route shares: build a page for the signed-in user, turning any error into
the HTML error page or the sign-in redirect; POSTs check the CSRF token first."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import Request
from fastapi.responses import RedirectResponse, Response

from headend.auth.deps import Ops, ops_of
from headend.auth.roles import User
from headend.web.render import error_page
from headend.web.session import check_csrf, web_user


def page(request: Request, build: Callable[[User], Response]) -> Response:
    """``build(user)`` for the signed-in user; errors become HTML pages."""
    user: User | None = None
    try:
        user = web_user(request)
        return build(user)
    except Exception as exc:  # every error becomes a page, never a traceback
        return error_page(request, user, exc)


def action(request: Request, token: str | None, build: Callable[[User], Response]) -> Response:
    """Like ``page`` for a POST: the CSRF token must match before anything happens."""

    def checked(user: User) -> Response:
        check_csrf(request, token)
        return build(user)

    return page(request, checked)


def ops(request: Request) -> Ops:
    return ops_of(request)


def see_other(url: str) -> Response:
    """A 303 redirect (after a POST), or htmx's client-side redirect for an htmx request."""
    return RedirectResponse(url, status_code=303)


def hx(request: Request) -> bool:
    """Whether the request came from htmx (then answer with a fragment)."""
    return request.headers.get("HX-Request") == "true"


def form_list(value: Any) -> list[str]:
    """Non-empty, stripped values of a multi-valued or comma-separated field."""
    if value is None:
        return []
    items = value if isinstance(value, list) else str(value).split(",")
    return [s.strip() for s in items if s and s.strip()]
