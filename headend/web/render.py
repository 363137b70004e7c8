"""Rendering pages: one Jinja2 environment (autoescaped), the context every page gets, and the
HTML error page (the console never shows a traceback or raw JSON to an operator)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from fastapi import HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from headend.api.deps import OutOfScope
from headend.auth.errors import Forbidden, Unauthenticated
from headend.auth.roles import Role, User
from headend.db.errors import Conflict, HeadendError, InvalidRequest, NotFound
from headend.web import i18n
from headend.web.errors import NotSignedIn, WebError
from headend.web.session import (
    CSRF_FIELD,
    CSRF_HEADER,
    LANGUAGES,
    ZONES,
    Prefs,
    csrf_token,
    prefs_of,
    set_csrf,
)

log = logging.getLogger(__name__)
TEMPLATES = Path(__file__).with_name("templates")
env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
env.filters["pct"] = i18n.percent
env.filters["day"] = i18n.format_day


def render(
    request: Request,
    template: str,
    user: User | None,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    """Render ``template`` with the page context (user, language, zone, CSRF, helpers)."""
    prefs: Prefs = prefs_of(request, user.name if user else None)
    token, new = csrf_token(request)
    tz = prefs.tz
    page = env.get_template(template).render(
        request=request,
        user=user,
        prefs=prefs,
        lang=prefs.lang,
        t=i18n.translator(prefs.lang),
        time=lambda v, seconds=True: i18n.format_time(v, tz, seconds),
        csrf=token,
        csrf_field=CSRF_FIELD,
        csrf_header=CSRF_HEADER,
        languages=LANGUAGES,
        zones=ZONES,
        can=lambda role: user is not None and user.role.at_least(Role(role)),
        **context,
    )
    response = HTMLResponse(page, status_code=status_code)
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
        "script-src 'self'; frame-ancestors 'none'; form-action 'self'"
    )
    if new:
        set_csrf(request, response, token)
    return response


STATUS: list[tuple[type[Exception], int]] = [
    (OutOfScope, 403),  # before InvalidRequest, its base
    (NotFound, 404),
    (Forbidden, 403),
    (Conflict, 409),
    (InvalidRequest, 400),
]


def error_page(request: Request, user: User | None, exc: Exception) -> Response:
    """The HTML answer for an error raised while building a page (sign-in redirect for 401)."""
    if isinstance(exc, NotSignedIn | Unauthenticated):
        target = request.url.path
        if request.url.query:
            target += "?" + request.url.query
        if request.headers.get("HX-Request"):
            response = Response(status_code=204)
            response.headers["HX-Redirect"] = "/login"
            return response
        return RedirectResponse(f"/login?next={_quote(target)}", status_code=303)
    if isinstance(exc, HTTPException):
        code, message = exc.status_code, _detail(exc.detail)
    elif isinstance(exc, WebError):
        code, message = exc.status, str(exc)
    elif isinstance(exc, HeadendError):
        code = next((c for cls, c in STATUS if isinstance(exc, cls)), 400)
        message = str(exc)
    else:  # pragma: no cover  (a bug: log it, show a plain page)
        log.exception("web console page failed", exc_info=exc)
        code, message = 500, "internal error"
    if request.headers.get("HX-Request"):
        return render(request, "_error_fragment.html", user, status_code=code, message=message)
    return render(request, "error.html", user, status_code=code, code=code, message=message)


def _detail(detail: Any) -> str:
    if isinstance(detail, dict):
        return str(detail.get("message") or detail)
    return str(detail)


def _quote(text: str) -> str:
    from urllib.parse import quote

    return quote(text, safe="/")
