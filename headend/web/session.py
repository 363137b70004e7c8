"""Browser sessions: the API's bearer token in a cookie, double-submit CSRF, and preferences.

Cookies (all ``Path=/``, ``SameSite=Strict``, ``Secure`` when the request came over HTTPS):

    taiqu_session   the bearer token ``/api/v1/auth/token`` would issue (HttpOnly; expires with it)
    taiqu_csrf      ``<nonce>.<mac>``: a random nonce and an HMAC over it and the session cookie
                    (keyed from the token secret), so a token is bound to one session; every POST
                    must echo it in the ``csrf_token`` form field or the ``X-CSRF-Token`` header
                    (htmx sends the header), compared in constant time, and its MAC must match the
                    session the request carries.  A token planted in a browser (a sibling
                    sub-domain can set cookies) or carried over from another session is refused;
                    a page rendered for a session whose token is not bound to it gets a new one.

Language and time zone are the signed-in user's (``users.language``/``users.timezone``, see
``headend.web.prefs``), so they follow the user to any browser; before sign-in the language
follows the browser's ``Accept-Language``.

The token is checked exactly as the API checks it (``headend.auth.deps.current_user``): role and
area scope come from the database on every request, a disabled user or a changed password ends
every session at once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import HTTPException, Request, Response

from headend.auth.deps import current_user, ops_of
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
    """Set the session cookie (and a fresh CSRF token bound to it: never one of before)."""
    response.set_cookie(
        SESSION_COOKIE,
        token,
        expires=expires,
        path="/",
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )
    set_csrf(request, response, new_csrf(request, token))


def end_session(request: Request, response: Response) -> None:
    """Forget the session (the token itself expires on its own)."""
    response.delete_cookie(SESSION_COOKIE, path="/", samesite="strict", secure=_secure(request))


def _mac(request: Request, nonce: str, session: str) -> str:
    bound = hashlib.sha256(session.encode()).hexdigest()
    return ops_of(request).tokens.mac("csrf", f"{nonce}|{bound}")


def new_csrf(request: Request, session: str | None = None) -> str:
    """A fresh CSRF token bound to ``session`` (default: the request's session cookie)."""
    if session is None:
        session = request.cookies.get(SESSION_COOKIE) or ""
    nonce = secrets.token_urlsafe(24)
    return f"{nonce}.{_mac(request, nonce, session)}"


def _bound(request: Request, token: str) -> bool:
    """Whether ``token`` was made for the session cookie this request carries."""
    nonce, _, mac = token.partition(".")
    if not nonce or not mac or len(token) > 200:
        return False
    expected = _mac(request, nonce, request.cookies.get(SESSION_COOKIE) or "")
    return hmac.compare_digest(mac.encode(), expected.encode())


def csrf_token(request: Request) -> tuple[str, bool]:
    """The request's CSRF token and whether it is new (then the response must set it)."""
    existing = request.cookies.get(CSRF_COOKIE)
    if existing and _bound(request, existing):
        return existing, False
    return new_csrf(request), True


def set_csrf(request: Request, response: Response, token: str) -> None:
    response.set_cookie(
        CSRF_COOKIE, token, path="/", httponly=True, samesite="strict", secure=_secure(request)
    )


def check_csrf(request: Request, sent: str | None) -> None:
    """Refuse a POST whose token (form field or header) does not match the cookie, or whose
    token is not bound to the request's session."""
    cookie = request.cookies.get(CSRF_COOKIE) or ""
    sent = sent or request.headers.get(CSRF_HEADER) or ""
    if not cookie or not sent or not hmac.compare_digest(cookie.encode(), sent.encode()):
        raise CsrfRejected("the form's security token is missing or stale: reload the page")
    if not _bound(request, cookie):
        raise CsrfRejected("the form's security token belongs to another session: reload the page")


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
