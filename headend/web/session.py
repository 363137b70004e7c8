"""Browser sessions: the API's bearer token in a cookie, double-submit CSRF, and preferences.

Cookies (all ``Path=/``, ``SameSite=Strict``, ``Secure`` when the request came over HTTPS):

    taiqu_session   the bearer token ``/api/v1/auth/token`` would issue (HttpOnly; expires with it)
    taiqu_csrf      a random token; every POST must echo it in the ``csrf_token`` form field or the
                    ``X-CSRF-Token`` header (htmx sends the header), compared in constant time

Language and time zone are the signed-in user's (``users.language``/``users.timezone``, see
``headend.web.prefs``), so they follow the user to any browser; before sign-in the language
follows the browser's ``Accept-Language``.

The token is checked exactly as the API checks it (``headend.auth.deps.current_user``): role and
area scope come from the database on every request, a disabled user or a changed password ends
every session at once.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import HTTPException, Request, Response

from headend.auth.deps import current_user
from headend.auth.roles import User
from headend.web.errors import CsrfRejected, NotSignedIn

SESSION_COOKIE = "taiqu_session"
CSRF_COOKIE = "taiqu_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
LANGUAGES = ("zh", "en")
DEFAULT_ZONE = "Asia/Shanghai"
ZONES = ("Asia/Shanghai", "Asia/Urumqi", "Asia/Hong_Kong", "UTC", "Europe/Berlin")


@dataclass(frozen=True)
class Prefs:
    """How one user wants the console shown."""

    lang: str = "zh"
    zone: str = DEFAULT_ZONE

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.zone)


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def web_user(request: Request) -> User:
    """The signed-in user (``NotSignedIn`` without a valid session cookie)."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise NotSignedIn("sign in first")
    try:
        return current_user(request, token)
    except HTTPException as exc:
        raise NotSignedIn(str(exc.detail)) from None


def start_session(request: Request, response: Response, token: str, expires: datetime) -> None:
    """Set the session cookie (and a fresh CSRF token: a new session never reuses one)."""
    response.set_cookie(
        SESSION_COOKIE,
        token,
        expires=expires,
        path="/",
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )
    set_csrf(request, response, secrets.token_urlsafe(32))


def end_session(request: Request, response: Response) -> None:
    """Forget the session (the token itself expires on its own)."""
    response.delete_cookie(SESSION_COOKIE, path="/", samesite="strict", secure=_secure(request))


def csrf_token(request: Request) -> tuple[str, bool]:
    """The request's CSRF token and whether it is new (then the response must set it)."""
    existing = request.cookies.get(CSRF_COOKIE)
    if existing and 20 <= len(existing) <= 100:
        return existing, False
    return secrets.token_urlsafe(32), True


def set_csrf(request: Request, response: Response, token: str) -> None:
    response.set_cookie(
        CSRF_COOKIE, token, path="/", httponly=True, samesite="strict", secure=_secure(request)
    )


def check_csrf(request: Request, sent: str | None) -> None:
    """Refuse a POST whose token (form field or header) does not match the cookie."""
    cookie = request.cookies.get(CSRF_COOKIE) or ""
    sent = sent or request.headers.get(CSRF_HEADER) or ""
    if not cookie or not sent or not hmac.compare_digest(cookie.encode(), sent.encode()):
        raise CsrfRejected("the form's security token is missing or stale: reload the page")


def _accepts_chinese(request: Request) -> bool:
    header = request.headers.get("accept-language", "")
    first = header.split(",")[0].strip().lower()
    return not first or first.startswith("zh")


def prefs_of(request: Request, user: str | None) -> Prefs:
    """The preferences stored for ``user``, else defaults from the request."""
    if user is not None:
        from headend.web import prefs

        stored = prefs.load(request.app.state.engine, user)
        if stored is not None:
            return stored
    return Prefs(lang="zh" if _accepts_chinese(request) else "en")


def valid_zone(zone: str) -> bool:
    """Whether ``zone`` is an IANA time zone name this system knows."""
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def safe_next(target: str | None) -> str:
    """A local path to go back to after signing in (never another site)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target
